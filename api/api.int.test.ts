import path from 'node:path'
import { Pool } from 'pg'
import { cassandraSink } from '../consumers/sinks/cassandra'
import { postgresExecutor, postgresSink } from '../consumers/sinks/postgres'
import type { Sink } from '../consumers/sinks/sink'
import { postgresDialect, sqliteDialect } from '../consumers/sinks/sql/dialect'
import { openSqlite, sqliteExecutor, sqliteSink } from '../consumers/sinks/sqlite'
import { LocalSchemaRegistry } from '../core/envelope/registry'
import type { Alert, Rollup, Telemetry } from '../schemas/types.generated'
import { testKafkaLog, testLogger } from '../test/kafka'
import { serverEnv, uniqueName } from '../test/servers'
import { cassandraReadStore } from './cassandra-store'
import { ApiKeyStore } from './keys'
import { topicRules } from './rules'
import { buildApi } from './server'
import { sqlReadStore } from './sql-store'
import type { ReadStore } from './store'
import { tempDir } from '../test/tmp'

const MIN = 60_000
const T0 = Date.UTC(2026, 10, 20, 23, 0) // two hours across midnight UTC
const N = 720 // readings per device, one every 10 s

/** The seeded data: two devices; temperature is a known function of the reading's index. */
const temperature = (d: number, i: number) => 20 + d * 5 + ((i * 7) % 13) / 2
const readings: Telemetry[] = [0, 1].flatMap((d) =>
  Array.from({ length: N }, (_, i) => ({
    deviceId: `api-dev-${d}`,
    tenant: d === 0 ? 'acme' : 'globex',
    ts: T0 + i * 10_000,
    receivedAt: T0 + i * 10_000 + 3,
    seq: i,
    metrics: { temperature: temperature(d, i), door: i % 2 === 0 ? 'open' : 'shut' },
    meta: { fw: '2.1' },
    source: 'mqtt' as const,
  })),
)
const rollups: Rollup[] = [0, 1, 2].map((k) => ({
  deviceId: 'api-dev-0',
  metric: 'temperature',
  windowStart: T0 + k * MIN,
  windowEnd: T0 + (k + 1) * MIN,
  count: 6,
  min: 20,
  max: 26,
  sum: 138,
  avg: 23,
  first: 20,
  last: 26,
  kind: 'final',
}))
const alert: Alert = {
  alertId: 'f00dcafe',
  event: 'raised',
  ruleId: 'hot',
  ruleName: 'Too hot',
  deviceId: 'api-dev-1',
  tenant: 'globex',
  severity: 'warning',
  ts: T0 + 5 * MIN,
  raisedAt: T0 + 5 * MIN,
  metric: 'temperature',
  value: 31,
  message: 'temperature 31 above 30',
}

/** The expected series, computed here from the seeded readings (not by the store). */
function expected(deviceId: string, from: number, to: number, intervalMs: number, agg: string) {
  const groups = new Map<number, number[]>()
  for (const r of readings) {
    if (r.deviceId !== deviceId || r.ts < from || r.ts >= to) continue
    const t = Math.floor(r.ts / intervalMs) * intervalMs
    groups.set(t, [...(groups.get(t) ?? []), r.metrics.temperature as number])
  }
  const f: Record<string, (v: number[]) => number> = {
    avg: (v) => v.reduce((a, b) => a + b, 0) / v.length,
    min: (v) => Math.min(...v),
    max: (v) => Math.max(...v),
    sum: (v) => v.reduce((a, b) => a + b, 0),
    count: (v) => v.length,
    last: (v) => v[v.length - 1]!,
  }
  return [...groups].sort(([a], [b]) => a - b).map(([t, v]) => ({ t, v: f[agg]!(v), n: v.length }))
}

interface Backend {
  sink: (name: string) => Sink
  read: (name: string) => ReadStore
  drop: (name: string) => Promise<void>
}

const backends: [string, () => Backend][] = [
  [
    'postgres [postgres] [kafka]',
    () => {
      const url = serverEnv().FS_POSTGRES_URL
      return {
        sink: (name) => postgresSink({ connectionString: url, schema: name }),
        read: (name) =>
          sqlReadStore(
            'postgres',
            postgresDialect,
            postgresExecutor(new Pool({ connectionString: url, max: 4, options: `-c search_path=${name}` })),
          ),
        drop: async (name) => {
          const pool = new Pool({ connectionString: url, max: 1 })
          await pool.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`)
          await pool.end()
        },
      }
    },
  ],
  [
    'sqlite, the embedded store [kafka]',
    () => {
      const dir = tempDir('fs-api-sqlite-')
      return {
        sink: (name) => sqliteSink({ file: path.join(dir, `${name}.db`) }),
        read: (name) =>
          sqlReadStore('sqlite', sqliteDialect, sqliteExecutor(openSqlite(path.join(dir, `${name}.db`)))),
        drop: async () => {},
      }
    },
  ],
  [
    'cassandra [cassandra] [kafka]',
    () => {
      const client = {
        contactPoints: [serverEnv().FS_CASSANDRA_CONTACT_POINTS],
        localDataCenter: 'datacenter1',
      }
      return {
        sink: (keyspace) => cassandraSink({ client, keyspace, concurrency: 64 }),
        read: (keyspace) => cassandraReadStore({ client, keyspace }),
        drop: async () => {},
      }
    },
  ],
]

describe.each(backends)('api > query API on %s', (_title, backend) => {
  const name = uniqueName('api')
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_')
    .slice(0, 40)
  let b: Backend
  let store: ReadStore
  let base: string
  let close: () => Promise<void>
  const keys: Record<string, string> = {}
  let keyStore: ApiKeyStore
  const log = testKafkaLog()
  const published: Alert[] = []

  beforeAll(async () => {
    b = backend()
    const sink = b.sink(name)
    await sink.connect()
    await sink.writeTelemetry(readings)
    await sink.writeRollups(rollups)
    await sink.writeAlerts([alert])
    await sink.writeDevices([
      {
        deviceId: 'api-dev-0',
        device: { deviceId: 'api-dev-0', tenant: 'acme', site: 's1', model: 'm', tags: {}, limits: {} },
      },
    ])
    await sink.close()
    store = b.read(name)
    keyStore = new ApiKeyStore(path.join(tempDir('fs-keys-'), 'keys.json'))
    keys.read = keyStore.add('reader', ['read']).key
    keys.rules = keyStore.add('rule-writer', ['read', 'write:rules']).key
    keys.ops = keyStore.add('operator', ['write:alerts']).key
    const revoked = keyStore.add('old', ['admin'])
    keyStore.revoke(revoked.id)
    keys.revoked = revoked.key
    const rulesTopic = `${name}.rules`
    const admin = await log.admin()
    await admin.ensureTopics([{ name: rulesTopic, partitions: 1, replicationFactor: 1, compacted: true }])
    await admin.close()
    const rules = await topicRules({
      log,
      registry: new LocalSchemaRegistry(),
      topic: rulesTopic,
      groupId: uniqueName('api-rules'),
      logger: testLogger('api'),
    })
    const { app } = await buildApi({
      store,
      keys: keyStore,
      logger: testLogger('api'),
      limits: { maxRangeMs: 31 * 86_400_000, maxRows: 5000, maxPoints: 2000 },
      rules,
      publishAlert: async (a) => void published.push(a),
    })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const addr = app.server.address() as { port: number }
    base = `http://127.0.0.1:${addr.port}`
    close = async () => {
      await app.close()
      await rules.close()
      await store.close()
      await log.close()
      await b.drop(name)
    }
  }, 120_000)
  afterAll(async () => close?.())

  const get = async (url: string, key: string | null = keys.read!) => {
    const res = await fetch(base + url, { headers: key ? { Authorization: `Bearer ${key}` } : {} })
    return { status: res.status, body: (await res.json()) as Record<string, any> } // eslint-disable-line @typescript-eslint/no-explicit-any
  }
  const send = async (method: string, url: string, key: string, body?: unknown) => {
    const res = await fetch(base + url, {
      method,
      headers: { Authorization: `Bearer ${key}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    })
    return { status: res.status, body: (await res.json()) as Record<string, any> } // eslint-disable-line @typescript-eslint/no-explicit-any
  }

  it('series: every aggregation per interval equals an independent computation over the seeded readings', async () => {
    const from = T0 + 7 * MIN
    const to = T0 + 97 * MIN // crosses midnight
    for (const agg of ['avg', 'min', 'max', 'sum', 'count', 'last']) {
      for (const interval of ['1m', '15m']) {
        const r = await get(
          `/v1/devices/api-dev-1/series?metric=temperature&from=${from}&to=${new Date(to).toISOString()}&interval=${interval}&agg=${agg}`,
        )
        expect(r.status).toBe(200)
        const want = expected('api-dev-1', from, to, interval === '1m' ? MIN : 15 * MIN, agg)
        expect(r.body.points).toHaveLength(want.length)
        r.body.points.forEach((p: { t: number; v: number; n: number }, i: number) => {
          expect(p.t).toBe(want[i]!.t)
          expect(p.n).toBe(want[i]!.n)
          expect(p.v).toBeCloseTo(want[i]!.v, 9)
        })
      }
    }
    // A metric that is not a number has no series points.
    expect((await get(`/v1/devices/api-dev-1/series?metric=door&from=${from}&to=${to}`)).body.points).toEqual(
      [],
    )
  })

  it('devices, rollups, alerts and the seed /fetch endpoint return the stored rows', async () => {
    const devices = await get('/v1/devices?limit=100')
    expect(devices.status).toBe(200)
    const ids = devices.body.devices.map((d: { deviceId: string }) => d.deviceId)
    expect(ids).toEqual(expect.arrayContaining(['api-dev-0', 'api-dev-1']))
    const d0 = await get('/v1/devices/api-dev-0')
    expect(d0.body).toMatchObject({
      deviceId: 'api-dev-0',
      site: 's1',
      registered: true,
      lastSeen: T0 + (N - 1) * 10_000,
    })
    expect((await get('/v1/devices/nope')).status).toBe(404)
    const ro = await get(
      `/v1/devices/api-dev-0/rollups?metric=temperature&window=1m&from=${T0}&to=${T0 + 10 * MIN}`,
    )
    expect(
      ro.body.rollups.map((r: Rollup & { windowStart: number }) => [r.windowStart, r.count, r.avg]),
    ).toEqual(rollups.map((r) => [r.windowStart, 6, 23]))
    const al = await get('/v1/alerts?deviceId=api-dev-1&state=open')
    expect(al.body.alerts).toHaveLength(1)
    expect(al.body.alerts[0]).toMatchObject({
      alertId: 'f00dcafe',
      state: 'open',
      severity: 'warning',
      value: 31,
    })
    const f = await get(`/fetch/api-dev-0?from=${T0}&to=${T0 + 60_000}`)
    expect(f.status).toBe(200)
    expect(f.body.deviceinfo).toEqual({ deviceid: 'api-dev-0', fw: '2.1' })
    expect(f.body.tsdata).toEqual(
      readings
        .filter((r) => r.deviceId === 'api-dev-0' && r.ts < T0 + 60_000)
        .map((r) => ({ timestamp: r.ts, ...r.metrics })),
    )
  })

  it('acknowledging an alert needs write:alerts; the first acknowledgement stands and is published', async () => {
    expect((await send('POST', '/v1/alerts/f00dcafe/ack', keys.read!)).status).toBe(403)
    const ack = await send('POST', '/v1/alerts/f00dcafe/ack', keys.ops!)
    expect(ack.status).toBe(200)
    expect(ack.body).toMatchObject({ alertId: 'f00dcafe', acknowledgedBy: 'operator' })
    const first = ack.body.acknowledgedAt
    expect(typeof first).toBe('number')
    const again = await send('POST', '/v1/alerts/f00dcafe/ack', keys.ops!)
    expect(again.body.acknowledgedAt).toBe(first)
    // One `acknowledged` event for the alert consumers, not one per request.
    expect(published).toEqual([
      expect.objectContaining({ alertId: 'f00dcafe', event: 'acknowledged', ts: first, message: 'operator' }),
    ])
    expect((await send('POST', '/v1/alerts/nope/ack', keys.ops!)).status).toBe(404)
  })

  it('rules: read with read, write with write:rules (validated, published to the rules topic)', async () => {
    const rule = {
      id: 'api-hot',
      name: 'Hot',
      kind: 'threshold',
      metric: 'temperature',
      above: 30,
      severity: 'warning',
    }
    expect((await send('PUT', '/v1/rules/api-hot', keys.read!, rule)).status).toBe(403)
    const bad = await send('PUT', '/v1/rules/api-hot', keys.rules!, { ...rule, above: 'hot' })
    expect(bad.status).toBe(400)
    expect(bad.body.error.code).toBe('FS_API_BAD_RULE')
    expect(bad.body.error.details[0]).toMatchObject({ path: 'above' })
    expect((await send('PUT', '/v1/rules/other-id', keys.rules!, rule)).status).toBe(400)
    expect((await send('PUT', '/v1/rules/api-hot', keys.rules!, rule)).status).toBe(202)
    let listed: { id: string }[] = []
    for (let i = 0; i < 100 && listed.length === 0; i++) {
      listed = (await get('/v1/rules')).body.rules
      if (listed.length === 0) await new Promise((r) => setTimeout(r, 100))
    }
    expect(listed.map((r) => r.id)).toEqual(['api-hot'])
    expect((await get('/v1/rules/api-hot')).body).toMatchObject({ id: 'api-hot', above: 30 })
  })

  it('keys: missing, malformed or revoked → 401; wrong scope → 403; errors are {error: {code, message}}', async () => {
    for (const [key, status, code] of [
      [null, 401, 'FS_API_NO_KEY'],
      ['fsk_0000000000000000_' + 'A'.repeat(43), 401, 'FS_API_BAD_KEY'],
      ['not-a-key', 401, 'FS_API_BAD_KEY'],
      [keys.revoked, 401, 'FS_API_BAD_KEY'],
      [keys.ops, 403, 'FS_API_SCOPE'],
    ] as const) {
      const r = await get('/v1/devices', key)
      expect([r.status, r.body.error.code]).toEqual([status, code])
      expect(typeof r.body.error.message).toBe('string')
    }
  })

  it('injection attempts in every parameter get 400 and change nothing', async () => {
    const before = [
      (await get(`/fetch/api-dev-0?from=${T0}&to=${T0 + 3 * 3_600_000}&limit=5000`)).body.tsdata.length,
      (await get('/v1/alerts')).body.alerts.length,
      (await get('/v1/devices')).body.devices.length,
    ]
    const hostile = [
      "x' OR '1'='1",
      "x'; DROP TABLE telemetry; --",
      'x; DROP KEYSPACE ks',
      '../../etc/passwd',
      'x%00y',
      '1 UNION SELECT * FROM devices',
      '"); --',
    ].map(encodeURIComponent)
    const urls = hostile.flatMap((h) => [
      `/v1/devices/${h}`,
      `/v1/devices/${h}/series?metric=temperature`,
      `/v1/devices/api-dev-0/series?metric=${h}`,
      `/v1/devices/api-dev-0/series?metric=temperature&from=${h}`,
      `/v1/devices/api-dev-0/series?metric=temperature&to=${h}`,
      `/v1/devices/api-dev-0/series?metric=temperature&interval=${h}`,
      `/v1/devices/api-dev-0/series?metric=temperature&agg=${h}`,
      `/v1/devices/api-dev-0/rollups?metric=${h}`,
      `/v1/devices/api-dev-0/rollups?window=${h}`,
      `/v1/devices?tenant=${h}`,
      `/v1/devices?after=${h}`,
      `/v1/devices?limit=${h}`,
      `/v1/alerts?deviceId=${h}`,
      `/v1/alerts?state=${h}`,
      `/v1/alerts/${h}`,
      `/v1/rules/${h}`,
      `/fetch/${h}`,
      `/fetch/api-dev-0?from=${h}`,
      `/v1/devices?${h}=1`,
    ])
    for (const u of urls) {
      const r = await get(u)
      expect([u, r.status]).toEqual([u, 400])
      expect(r.body.error.code).toMatch(/^FS_API_/)
    }
    expect((await send('POST', `/v1/alerts/${hostile[0]}/ack`, keys.ops!)).status).toBe(400)
    const after = [
      (await get(`/fetch/api-dev-0?from=${T0}&to=${T0 + 3 * 3_600_000}&limit=5000`)).body.tsdata.length,
      (await get('/v1/alerts')).body.alerts.length,
      (await get('/v1/devices')).body.devices.length,
    ]
    expect(after).toEqual(before)
    expect(before[0]).toBe(N)
  })

  it('limits: a range over the limit, too many points or too many rows → 400', async () => {
    const over = await get(`/v1/devices/api-dev-0/series?metric=temperature&from=0&to=${40 * 86_400_000}`)
    expect([over.status, over.body.error.code]).toEqual([400, 'FS_API_RANGE_TOO_LONG'])
    const points = await get(
      `/v1/devices/api-dev-0/series?metric=temperature&from=${T0}&to=${T0 + 86_400_000}&interval=1s`,
    )
    expect([points.status, points.body.error.code]).toEqual([400, 'FS_API_TOO_MANY_POINTS'])
    expect((await get('/fetch/api-dev-0?limit=5001')).status).toBe(400)
    expect((await get(`/v1/devices/api-dev-0/series?metric=temperature&from=${T0}&to=${T0}`)).status).toBe(
      400,
    )
  })

  it('serves its OpenAPI document, health, readiness and metrics', async () => {
    const doc = await get('/openapi.json', null)
    expect(doc.status).toBe(200)
    expect(Object.keys(doc.body.paths)).toEqual(
      expect.arrayContaining([
        '/v1/devices',
        '/v1/devices/{deviceId}/series',
        '/v1/devices/{deviceId}/rollups',
        '/v1/alerts',
        '/v1/alerts/{alertId}/ack',
        '/v1/rules/{ruleId}',
        '/fetch/{deviceId}',
      ]),
    )
    expect((await get('/readyz', null)).body).toMatchObject({ status: 'ready' })
    const m = await fetch(`${base}/metrics`)
    expect(await m.text()).toMatch(/fleetstream_api_requests_total\{route="\/v1\/devices",status="200"\}/)
  })
})
