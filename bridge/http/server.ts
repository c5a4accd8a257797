import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { DeviceIdentity } from '../auth/credentials'
import type { AdapterDeps } from '../registry'
import { formatFromContentType } from '../decode/formats'
import { PushbackError, RateLimitError } from '../errors'
import type { IngestOutcome } from '../ingest/pipeline'

/** A JSON error body: the same shape on every endpoint. */
function errorBody(status: number, code: string, message: string) {
  return { error: { status, code, message } }
}

/**
 * Reads the device's credentials: `Authorization: Basic base64(deviceId:token)`, or
 * `Authorization: Bearer <token>` with the device id from the path or `X-Device-Id`.
 */
function credentials(
  req: FastifyRequest,
  pathDevice: string | undefined,
): { deviceId: string; token: string } | undefined {
  const h = req.headers.authorization ?? ''
  const [scheme, value] = [h.slice(0, h.indexOf(' ')).toLowerCase(), h.slice(h.indexOf(' ') + 1).trim()]
  if (scheme === 'basic') {
    const text = Buffer.from(value, 'base64').toString('utf8')
    const i = text.indexOf(':')
    if (i <= 0) return undefined
    return { deviceId: text.slice(0, i), token: text.slice(i + 1) }
  }
  if (scheme === 'bearer') {
    const deviceId = pathDevice ?? (req.headers['x-device-id'] as string | undefined)
    return deviceId && value ? { deviceId, token: value } : undefined
  }
  return undefined
}

/**
 * The HTTP ingest API (fastify). Every answer about data comes after Kafka has it:
 * 200 with counts when all entries were accepted; 400 with one error per bad entry when some
 * were not (the good entries of the same request are written, not lost: retrying the whole
 * request is safe, since sinks key rows by (deviceId, ts, seq)); 401/403; 413; 429 and 503
 * with Retry-After under rate limits and pushback.
 */
export async function startHttpIngest(
  deps: AdapterDeps,
): Promise<{ app: FastifyInstance; port: number; close(): Promise<void> }> {
  const { config, pipeline, devices, metrics } = deps
  const log = deps.logger.child({ component: 'bridge.http' })
  const hardLimit = config.limits.maxPayloadBytes * 4
  const app = Fastify({ bodyLimit: hardLimit, logger: false, return503OnClosing: true })

  // Bodies stay raw bytes: the pipeline decodes them (and dead-letters the original bytes).
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body))

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      void pipeline.refuse(
        {
          source: 'http',
          deviceId: 'unknown',
          tenant: null,
          topic: req.url.slice(0, 200),
          payload: Buffer.alloc(0),
          receivedAt: Date.now(),
        },
        'FS_BRIDGE_TOO_LARGE',
        `HTTP body of ${req.headers['content-length'] ?? '?'} bytes is over the ${hardLimit}-byte limit`,
      )
      return reply.code(413).send(errorBody(413, 'FS_BRIDGE_TOO_LARGE', `body over ${hardLimit} bytes`))
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
    if (status === 500) log.error('request failed', { error: err.message })
    return reply
      .code(status)
      .send(errorBody(status, err.code ?? 'FS_BRIDGE_HTTP', status === 500 ? 'internal error' : err.message))
  })

  async function authenticate(
    req: FastifyRequest,
    reply: FastifyReply,
    pathDevice?: string,
  ): Promise<DeviceIdentity | undefined> {
    const creds = credentials(req, pathDevice)
    const identity = creds ? await devices.verify(creds.deviceId, creds.token) : undefined
    if (!identity) {
      metrics.authFailures.inc({ source: 'http', reason: creds ? 'bad_credentials' : 'anonymous' })
      void reply
        .code(401)
        .header('WWW-Authenticate', 'Basic realm="fleetstream", Bearer')
        .send(
          errorBody(
            401,
            'FS_BRIDGE_AUTH',
            'device credentials required (Basic deviceId:token, or Bearer token)',
          ),
        )
      return undefined
    }
    return identity
  }

  async function ingest(
    req: FastifyRequest,
    reply: FastifyReply,
    identity: DeviceIdentity,
  ): Promise<FastifyReply> {
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0)
    let outcome: IngestOutcome
    try {
      outcome = await pipeline.ingest({
        source: 'http',
        deviceId: identity.deviceId,
        tenant: identity.tenant,
        topic: null,
        payload: body,
        format: formatFromContentType(req.headers['content-type']),
        receivedAt: Date.now(),
      })
    } catch (err) {
      if (err instanceof RateLimitError) {
        return reply
          .code(429)
          .header('Retry-After', String(err.retryAfterS))
          .send(errorBody(429, err.code, err.message))
      }
      if (err instanceof PushbackError) {
        return reply
          .code(503)
          .header('Retry-After', String(err.retryAfterS))
          .send(errorBody(503, err.code, err.message))
      }
      throw err
    }
    const status = outcome.rejected.length > 0 ? 400 : 200
    return reply
      .code(status)
      .send({ accepted: outcome.accepted, duplicates: outcome.duplicates, rejected: outcome.rejected })
  }

  app.post<{ Params: { deviceId: string } }>('/insert/:deviceId', async (req, reply) => {
    const identity = await authenticate(req, reply, req.params.deviceId)
    if (!identity) return reply
    if (identity.deviceId !== req.params.deviceId) {
      metrics.authFailures.inc({ source: 'http', reason: 'cross_device' })
      await pipeline.refuse(
        {
          source: 'http',
          deviceId: identity.deviceId,
          tenant: identity.tenant,
          topic: req.url,
          payload: Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0),
          receivedAt: Date.now(),
        },
        'FS_BRIDGE_FORBIDDEN',
        `device ${identity.deviceId} may not send as ${req.params.deviceId}`,
      )
      return reply
        .code(403)
        .send(
          errorBody(
            403,
            'FS_BRIDGE_FORBIDDEN',
            `device ${identity.deviceId} may not send as ${req.params.deviceId.slice(0, 128)}`,
          ),
        )
    }
    return ingest(req, reply, identity)
  })

  app.post('/v1/telemetry', async (req, reply) => {
    const identity = await authenticate(req, reply)
    if (!identity) return reply
    return ingest(req, reply, identity)
  })

  app.get('/metrics', async (_req, reply) => {
    reply.header('Content-Type', metrics.registry.contentType)
    return metrics.registry.metrics()
  })
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_req, reply) =>
    deps.ready() ? { status: 'ready' } : reply.code(503).send({ status: 'not ready' }),
  )

  await app.listen({ port: config.http.port, host: config.http.host, backlog: config.limits.listenBacklog })
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : config.http.port
  log.info('HTTP ingest listening', { port })
  return { app, port, close: () => app.close() }
}
