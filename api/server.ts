import { readFileSync } from 'node:fs'
import path from 'node:path'
import swagger from '@fastify/swagger'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { Logger } from '../core/logging/logger'
import { assetPath } from '../core/paths'
import type { Alert } from '../schemas/types.generated'
import { allows, type ApiKeyStore, type Scope } from './keys'
import { AGGS, type Agg, type AlertRow, type ReadStore } from './store'

/** Where rules are read and written (the compacted rules topic, through the rule table). */
export interface RulesBackend {
  list(): unknown[]
  /** Validates and publishes a rule; throws ApiError(400) naming each problem. */
  put(id: string, body: unknown): Promise<unknown>
  /** Publishes a tombstone; false when there is no such rule. */
  remove(id: string): Promise<boolean>
}

/** Limits that keep one request from reading the whole store. */
export interface ApiLimits {
  maxRangeMs: number
  maxRows: number
  maxPoints: number
}

export interface ApiOptions {
  store: ReadStore
  keys: ApiKeyStore
  logger: Logger
  limits: ApiLimits
  rules?: RulesBackend
  /** Publishes an alert event (an acknowledgement) for the alert consumers. */
  publishAlert?: (a: Alert) => Promise<void>
  /** Counters of the pipeline's stages (received, rejected, dead letters, rows…), for the dashboard. */
  pipelineStats?: () => Promise<Record<string, number>>
  /** Other roles' metrics served with the API's on `/metrics` (`fleetstream up`: one process, one endpoint). */
  metricsRegistries?: () => Registry[] | Promise<Registry[]>
  /** How often the live alert stream looks for changes. */
  alertPollMs?: number
  now?: () => number
}

/** An error with its HTTP status and a stable code; the body is `{error: {code, message}}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message)
  }
}

const UPLOT = path.dirname(require.resolve('uplot/package.json'))
// Shipped beside the sources (a compiled build in dist/ reads them from there too).
const DASHBOARD = assetPath('api', 'dashboard')
const DASHBOARD_FILES: [string, string, string][] = [
  ['/', path.join(DASHBOARD, 'index.html'), 'text/html; charset=utf-8'],
  ['/dashboard/app.js', path.join(DASHBOARD, 'app.js'), 'text/javascript; charset=utf-8'],
  ['/dashboard/style.css', path.join(DASHBOARD, 'style.css'), 'text/css; charset=utf-8'],
  ['/dashboard/uplot.js', path.join(UPLOT, 'dist/uPlot.iife.min.js'), 'text/javascript; charset=utf-8'],
  ['/dashboard/uplot.css', path.join(UPLOT, 'dist/uPlot.min.css'), 'text/css; charset=utf-8'],
]

const DEVICE_ID = '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$'
const METRIC = '^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$'
const TIME = { type: 'string', maxLength: 40, description: 'epoch ms or ISO 8601' }
const errorBody = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: { code: { type: 'string' }, message: { type: 'string' }, details: {} },
      required: ['code', 'message'],
    },
  },
}
const errors = { 400: errorBody, 401: errorBody, 403: errorBody, 404: errorBody, 501: errorBody }
const WINDOWS: Record<string, number> = { '1m': 60_000, '1h': 3_600_000 }

/** `30s`, `1m`, `6h`, `1d` or a number of ms. */
export function parseInterval(s: string): number | undefined {
  const m = /^(\d{1,9})(ms|s|m|h|d)?$/.exec(s)
  if (!m) return undefined
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 'ms']!
  const v = Number(m[1]) * unit
  return v > 0 ? v : undefined
}

/** Epoch ms or ISO 8601 (with a zone or Z). */
export function parseTime(s: string | undefined, name: string): number | undefined {
  if (s === undefined) return undefined
  if (/^\d{1,15}$/.test(s)) return Number(s)
  if (/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/.test(s)) {
    const t = Date.parse(s)
    if (Number.isFinite(t)) return t
  }
  throw new ApiError(400, 'FS_API_BAD_TIME', `${name} must be epoch ms or ISO 8601 (got "${s.slice(0, 40)}")`)
}

/**
 * The query API (fastify): devices, time series, rollups, alerts, rules and the seed's
 * `/fetch/:deviceId`, behind API keys with scopes; OpenAPI at `/openapi.json`; Prometheus
 * `/metrics`, `/healthz`, `/readyz`. Every parameter is checked against a pattern or an
 * enumeration before anything reaches the store, and the store receives values only as
 * statement parameters.
 */
export async function buildApi(o: ApiOptions): Promise<{ app: FastifyInstance; registry: Registry }> {
  const now = o.now ?? Date.now
  // Unknown query parameters are refused (400), not silently dropped (Fastify's default).
  const app = Fastify({
    logger: false,
    bodyLimit: 256 * 1024,
    routerOptions: { maxParamLength: 200 },
    ajv: { customOptions: { removeAdditional: false } },
  })
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const requests = new Counter({
    name: 'fleetstream_api_requests_total',
    help: 'API requests, by route and status',
    labelNames: ['route', 'status'],
    registers: [registry],
  })
  const latency = new Histogram({
    name: 'fleetstream_api_request_seconds',
    help: 'API request time, by route',
    labelNames: ['route'],
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  })
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'fleetstream query API',
        version: '1',
        description:
          'Devices, time series, rollups, alerts and rules. Send an API key as `Authorization: Bearer <key>` or `X-API-Key`.',
      },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' } } },
      security: [{ apiKey: [] }],
    },
  })

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unknown'
    requests.inc({ route, status: String(reply.statusCode) })
    latency.observe({ route }, reply.elapsedTime / 1000)
  })
  app.setErrorHandler((err: Error & { validation?: unknown; statusCode?: number }, req, reply) => {
    if (err instanceof ApiError)
      return reply
        .code(err.status)
        .send({ error: { code: err.code, message: err.message, details: err.details } })
    if (err.validation)
      return reply.code(400).send({ error: { code: 'FS_API_BAD_REQUEST', message: err.message } })
    if (err.statusCode && err.statusCode < 500)
      return reply.code(err.statusCode).send({ error: { code: 'FS_API_BAD_REQUEST', message: err.message } })
    o.logger.error('API request failed', { route: req.routeOptions.url, error: err.message })
    return reply.code(500).send({ error: { code: 'FS_API_INTERNAL', message: 'internal error' } })
  })
  app.setNotFoundHandler((_req, reply) =>
    reply.code(404).send({ error: { code: 'FS_API_NOT_FOUND', message: 'no such route' } }),
  )

  /** Checks the caller's key and scope; 401 without a current key, 403 without the scope. */
  const guard =
    (scope: Scope, opts: { queryKey?: boolean } = {}) =>
    async (req: FastifyRequest) => {
      const header = req.headers.authorization
      const key =
        (typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : undefined) ??
        (typeof req.headers['x-api-key'] === 'string' ? req.headers['x-api-key'] : undefined) ??
        // EventSource cannot send headers: the live stream also takes `?key=`.
        (opts.queryKey ? (req.query as { key?: string }).key : undefined)
      if (!key)
        throw new ApiError(401, 'FS_API_NO_KEY', 'an API key is required (Authorization: Bearer <key>)')
      const who = o.keys.verify(key)
      if (!who) throw new ApiError(401, 'FS_API_BAD_KEY', 'the API key is not valid')
      if (!allows(who.scopes, scope))
        throw new ApiError(403, 'FS_API_SCOPE', `this key lacks the "${scope}" scope`)
      ;(req as FastifyRequest & { keyName?: string }).keyName = who.name
    }

  /** A checked [from, to) range: defaults to the last `defaultMs`, at most maxRangeMs long. */
  const range = (q: { from?: string; to?: string }, defaultMs: number) => {
    const to = parseTime(q.to, 'to') ?? now()
    const from = parseTime(q.from, 'from') ?? to - defaultMs
    if (from >= to) throw new ApiError(400, 'FS_API_BAD_RANGE', 'from must be before to')
    if (to - from > o.limits.maxRangeMs)
      throw new ApiError(400, 'FS_API_RANGE_TOO_LONG', `the range may span at most ${o.limits.maxRangeMs} ms`)
    return { from, to }
  }
  const limit = {
    type: 'integer',
    minimum: 1,
    maximum: o.limits.maxRows,
    default: Math.min(1000, o.limits.maxRows),
  }
  const deviceParams = {
    type: 'object',
    properties: { deviceId: { type: 'string', pattern: DEVICE_ID } },
    required: ['deviceId'],
  }
  const notFound = (what: string) => new ApiError(404, 'FS_API_NOT_FOUND', `no such ${what}`)

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }))
  app.get('/readyz', { schema: { hide: true } }, async (_req, reply) => {
    try {
      await o.store.ping()
      return { status: 'ready', store: o.store.name }
    } catch (err) {
      return reply.code(503).send({ status: 'not ready', error: (err as Error).message })
    }
  })
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    const all = o.metricsRegistries ? Registry.merge([registry, ...(await o.metricsRegistries())]) : registry
    reply.header('Content-Type', all.contentType)
    return all.metrics()
  })

  app.get(
    '/v1/devices',
    {
      onRequest: guard('read'),
      schema: {
        summary: 'Devices (registry entries and last-seen time), by id',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            tenant: { type: 'string', pattern: DEVICE_ID },
            after: { type: 'string', pattern: DEVICE_ID, description: 'continue after this device id' },
            limit,
          },
        },
        response: errors,
      },
    },
    async (req) => {
      const q = req.query as { tenant?: string; after?: string; limit: number }
      return { devices: await o.store.devices(q) }
    },
  )
  app.get(
    '/v1/devices/:deviceId',
    { onRequest: guard('read'), schema: { summary: 'One device', params: deviceParams, response: errors } },
    async (req) => {
      const d = await o.store.device((req.params as { deviceId: string }).deviceId)
      if (!d) throw notFound('device')
      return d
    },
  )
  app.get(
    '/v1/devices/:deviceId/series',
    {
      onRequest: guard('read'),
      schema: {
        summary:
          'A metric of a device aggregated per interval over a range (default: the last 6 h, 1-minute avg)',
        params: deviceParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          required: ['metric'],
          properties: {
            metric: { type: 'string', pattern: METRIC },
            from: TIME,
            to: TIME,
            interval: { type: 'string', pattern: '^\\d{1,9}(ms|s|m|h|d)?$', default: '1m' },
            agg: { type: 'string', enum: [...AGGS], default: 'avg' },
          },
        },
        response: errors,
      },
    },
    async (req) => {
      const q = req.query as { metric: string; from?: string; to?: string; interval: string; agg: Agg }
      const { from, to } = range(q, 6 * 3_600_000)
      const intervalMs = parseInterval(q.interval)
      if (!intervalMs) throw new ApiError(400, 'FS_API_BAD_INTERVAL', 'interval must be positive')
      if ((to - from) / intervalMs > o.limits.maxPoints)
        throw new ApiError(
          400,
          'FS_API_TOO_MANY_POINTS',
          `at most ${o.limits.maxPoints} intervals per request`,
        )
      const deviceId = (req.params as { deviceId: string }).deviceId
      const points = await o.store.series({ deviceId, metric: q.metric, from, to, intervalMs, agg: q.agg })
      return { deviceId, metric: q.metric, agg: q.agg, intervalMs, from, to, points }
    },
  )
  app.get(
    '/v1/devices/:deviceId/rollups',
    {
      onRequest: guard('read'),
      schema: {
        summary: 'Window aggregates written by the rollup job (default: 1-minute windows of the last 6 h)',
        params: deviceParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            metric: { type: 'string', pattern: METRIC },
            window: { type: 'string', enum: Object.keys(WINDOWS), default: '1m' },
            from: TIME,
            to: TIME,
            limit,
          },
        },
        response: errors,
      },
    },
    async (req) => {
      const q = req.query as { metric?: string; window: string; from?: string; to?: string; limit: number }
      const deviceId = (req.params as { deviceId: string }).deviceId
      const r = range(q, 6 * 3_600_000)
      return {
        rollups: await o.store.rollups({
          ...r,
          deviceId,
          metric: q.metric,
          windowMs: WINDOWS[q.window]!,
          limit: q.limit,
        }),
      }
    },
  )
  app.get(
    '/v1/alerts',
    {
      onRequest: guard('read'),
      schema: {
        summary: 'Alerts, newest first',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            deviceId: { type: 'string', pattern: DEVICE_ID },
            state: { type: 'string', enum: ['open', 'cleared'] },
            limit,
          },
        },
        response: errors,
      },
    },
    async (req) => ({ alerts: await o.store.alerts(req.query as { limit: number }) }),
  )
  const alertParams = {
    type: 'object',
    properties: { alertId: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' } },
    required: ['alertId'],
  }
  app.get(
    '/v1/alerts/:alertId',
    { onRequest: guard('read'), schema: { summary: 'One alert', params: alertParams, response: errors } },
    async (req) => {
      const a = await o.store.alert((req.params as { alertId: string }).alertId)
      if (!a) throw notFound('alert')
      return a
    },
  )
  app.post(
    '/v1/alerts/:alertId/ack',
    {
      onRequest: guard('write:alerts'),
      schema: {
        summary: 'Acknowledge an alert (the first acknowledgement stands)',
        params: alertParams,
        response: errors,
      },
    },
    async (req) => {
      const id = (req.params as { alertId: string }).alertId
      const by = (req as FastifyRequest & { keyName?: string }).keyName ?? 'api'
      const at = now()
      const before = await o.store.alert(id)
      if (!before) throw notFound('alert')
      await o.store.acknowledge(id, by, at)
      if (before.acknowledgedAt === null && o.publishAlert)
        await o.publishAlert(acknowledgedEvent(before, by, at))
      return o.store.alert(id)
    },
  )

  const rules = () => {
    if (!o.rules)
      throw new ApiError(503, 'FS_API_RULES_UNAVAILABLE', 'this API has no rules topic configured')
    return o.rules
  }
  const ruleParams = {
    type: 'object',
    properties: { ruleId: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' } },
    required: ['ruleId'],
  }
  app.get(
    '/v1/rules',
    { onRequest: guard('read'), schema: { summary: 'The rules in force', response: errors } },
    async () => ({
      rules: rules().list(),
    }),
  )
  app.get(
    '/v1/rules/:ruleId',
    {
      onRequest: guard('read'),
      schema: { summary: 'One rule in force', params: ruleParams, response: errors },
    },
    async (req) => {
      const id = (req.params as { ruleId: string }).ruleId
      const r = rules()
        .list()
        .find((x) => (x as { id: string }).id === id)
      if (!r) throw notFound('rule')
      return r
    },
  )
  app.put(
    '/v1/rules/:ruleId',
    {
      onRequest: guard('write:rules'),
      schema: {
        summary: 'Validate and publish a rule (running rules jobs pick it up)',
        params: ruleParams,
        body: { type: 'object' },
        response: errors,
      },
    },
    async (req, reply: FastifyReply) => {
      const r = await rules().put((req.params as { ruleId: string }).ruleId, req.body)
      return reply.code(202).send(r)
    },
  )
  app.delete(
    '/v1/rules/:ruleId',
    {
      onRequest: guard('write:rules'),
      schema: { summary: 'Remove a rule', params: ruleParams, response: errors },
    },
    async (req, reply: FastifyReply) => {
      if (!(await rules().remove((req.params as { ruleId: string }).ruleId))) throw notFound('rule')
      return reply.code(202).send({ removed: (req.params as { ruleId: string }).ruleId })
    },
  )

  app.get(
    '/v1/metrics/:metric/summary',
    {
      onRequest: guard('read'),
      schema: {
        summary: "Per device: a metric's last, min, max and average over a range (default: the last 48 h)",
        params: {
          type: 'object',
          properties: { metric: { type: 'string', pattern: METRIC } },
          required: ['metric'],
        },
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { from: TIME, to: TIME, limit },
        },
        response: errors,
      },
    },
    async (req) => {
      if (!o.store.metricSummary)
        throw new ApiError(501, 'FS_API_UNSUPPORTED', `the ${o.store.name} store has no per-device summaries`)
      const q = req.query as { from?: string; to?: string; limit: number }
      const metric = (req.params as { metric: string }).metric
      return {
        metric,
        devices: await o.store.metricSummary({ ...range(q, 48 * 3_600_000), metric, limit: q.limit }),
      }
    },
  )
  app.get(
    '/v1/pipeline',
    {
      onRequest: guard('read'),
      schema: { summary: "The pipeline's counters (when this process runs the roles)", response: errors },
    },
    async () => ({ at: now(), counters: o.pipelineStats ? await o.pipelineStats() : {} }),
  )
  app.get(
    '/v1/alerts/stream',
    {
      onRequest: guard('read', { queryKey: true }),
      schema: {
        summary: 'Alert changes as server-sent events (`event: alert`, data = the alert)',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { key: { type: 'string', maxLength: 200 } },
        },
      },
    },
    async (req, reply) => {
      reply.hijack()
      const res = reply.raw
      res.writeHead(200, {
        'Content-Type': 'text/event-stream',
        'Cache-Control': 'no-cache',
        Connection: 'keep-alive',
      })
      res.write(': fleetstream alerts\n\n')
      // Changes are found by polling the store, so the stream works on every store and role layout.
      const seen = new Map<string, string>()
      let first = true
      const poll = async () => {
        const alerts = await o.store.alerts({ limit: 200 })
        for (const a of [...alerts].reverse()) {
          const version = `${a.state}/${a.updatedAt}/${a.acknowledgedAt}`
          if (seen.get(a.alertId) === version) continue
          seen.set(a.alertId, version)
          if (!first) res.write(`event: alert\ndata: ${JSON.stringify(a)}\n\n`)
        }
        first = false
      }
      let timer: NodeJS.Timeout | undefined
      const loop = () =>
        void poll().then(
          () => (timer = setTimeout(loop, o.alertPollMs ?? 1000)),
          () => res.end(),
        )
      loop()
      req.raw.on('close', () => clearTimeout(timer))
    },
  )

  // The web dashboard (api/dashboard/): static files, data from the API with the user's key.
  for (const [url, file, type] of DASHBOARD_FILES) {
    const body = readFileSync(file)
    app.get(url, { schema: { hide: true } }, async (_req, reply) =>
      reply.type(type).header('Cache-Control', 'no-cache').send(body),
    )
  }

  // The seed's read endpoint: the same shape as its `POST /insert/:deviceId` batch form.
  app.get(
    '/fetch/:deviceId',
    {
      onRequest: guard('read'),
      schema: {
        summary: 'Readings of a device in the seed batch form {deviceinfo, tsdata} (default: the last 24 h)',
        params: deviceParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { from: TIME, to: TIME, limit },
        },
        response: errors,
      },
    },
    async (req) => {
      const q = req.query as { from?: string; to?: string; limit: number }
      const deviceId = (req.params as { deviceId: string }).deviceId
      const rows = await o.store.readings({ ...range(q, 86_400_000), deviceId, limit: q.limit })
      const meta = rows.length ? rows[rows.length - 1]!.meta : {}
      return {
        deviceinfo: { deviceid: deviceId, ...meta },
        tsdata: rows.map((r) => ({ timestamp: r.ts, ...r.metrics })),
      }
    },
  )
  return { app, registry }
}

/** The `acknowledged` event of an alert, for the alerts topic. */
export function acknowledgedEvent(a: AlertRow, by: string, at: number): Alert {
  return {
    alertId: a.alertId,
    event: 'acknowledged',
    ruleId: a.ruleId,
    ruleName: a.ruleName,
    deviceId: a.deviceId,
    tenant: a.tenant,
    severity: a.severity as Alert['severity'],
    ts: at,
    raisedAt: a.raisedAt,
    metric: a.metric,
    value: a.value,
    message: by,
  }
}
