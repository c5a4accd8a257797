import { Pool } from 'pg'
import type { Telemetry } from '../../schemas/types.generated'
import { serverEnv, uniqueName } from '../../test/servers'
import { postgresExecutor } from './postgres'
import { SinkWriteError } from './sink'
import { postgresDialect } from './sql/dialect'
import { sqlMigrations } from './sql/sql-sink'
import { binaryCopy } from './sql/pg-binary-copy'
import { TELEMETRY } from './sql/tables'
import { LocalSchemaRegistry } from '../../core/envelope/registry'
import { createTelemetryCodec } from '../../core/envelope/telemetry'
import { encodeWire } from '../../core/envelope/wire'
import { postgresSink } from './postgres'

// The executor's fast path on the real PostgreSQL: binary COPY stores exactly what it is given
// (the sink falls back to INSERT … ON CONFLICT when COPY fails, which would hide a broken COPY
// from the sink's own tests), and a key already stored makes it fail, not retry.
describe('consumers > sinks > PostgreSQL binary COPY [postgres]', () => {
  const schema = uniqueName('copy').replace(/\W/g, '_')
  const admin = new Pool({ connectionString: serverEnv().FS_POSTGRES_URL })
  const pool = new Pool({
    connectionString: serverEnv().FS_POSTGRES_URL,
    options: `-c search_path=${schema}`,
  })
  const x = postgresExecutor(pool)

  beforeAll(async () => {
    await admin.query(`CREATE SCHEMA ${schema}`)
    for (const m of sqlMigrations(postgresDialect)) await x.query(m, [])
  })
  afterAll(async () => {
    await x.close()
    await admin.query(`DROP SCHEMA ${schema} CASCADE`)
    await admin.end()
  })

  const T = Date.UTC(2026, 10, 26, 12, 0, 0, 123)
  const rows: Telemetry[] = [
    {
      deviceId: 'd-1',
      tenant: null,
      ts: T,
      receivedAt: T + 5,
      seq: null,
      metrics: { temperature: 21.5, door: 'open\tnow', ok: true },
      meta: {},
      source: 'mqtt',
    },
    {
      deviceId: 'd-ü\\2',
      tenant: 'acme',
      ts: Date.UTC(1999, 11, 31, 23, 59, 59, 999), // before PostgreSQL's epoch: a negative offset
      receivedAt: T,
      seq: 9_007_199_254_740_991,
      metrics: { note: 'line\nbreak "quoted" ✓' },
      meta: { site: 'north' },
      source: 'http',
    },
  ]

  it('stores every column exactly', async () => {
    await x.copy!(TELEMETRY, binaryCopy(TELEMETRY, rows))
    const got = await x.query(
      `SELECT device_id, tenant, (extract(epoch from ts) * 1000)::bigint AS ts,
              (extract(epoch from received_at) * 1000)::bigint AS received_at, seq, source, metrics, meta
         FROM telemetry ORDER BY device_id`,
      [],
    )
    expect(got).toEqual(
      rows.map((r) => ({
        device_id: r.deviceId,
        tenant: r.tenant,
        ts: String(r.ts),
        received_at: String(r.receivedAt),
        seq: String(r.seq ?? -1),
        source: r.source,
        metrics: r.metrics,
        meta: r.meta,
      })),
    )
  })

  it('fails as a whole, not retriable, when a key is already stored', async () => {
    const err = await x.copy!(
      TELEMETRY,
      binaryCopy(TELEMETRY, [{ ...rows[0]!, deviceId: 'd-3' }, rows[0]!]),
    ).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SinkWriteError)
    expect((err as SinkWriteError).retriable).toBe(false)
    expect(await x.query("SELECT count(*)::int AS n FROM telemetry WHERE device_id = 'd-3'", [])).toEqual([
      { n: 0 },
    ])
  })
})

// The sink's fast path (Avro straight into COPY, sql/telemetry-copy.ts) against its general path
// (avsc decode, then COPY of the objects): the same readings leave the same rows.
describe('consumers > sinks > PostgreSQL telemetry fast path [postgres]', () => {
  const url = serverEnv().FS_POSTGRES_URL
  const schemas = { fast: uniqueName('fast'), general: uniqueName('general') }
  for (const k of ['fast', 'general'] as const) schemas[k] = schemas[k].replace(/\W/g, '_')
  const fast = postgresSink({ connectionString: url, schema: schemas.fast })
  const general = postgresSink({ connectionString: url, schema: schemas.general })
  const admin = new Pool({ connectionString: url })
  const codecP = createTelemetryCodec(new LocalSchemaRegistry())

  beforeAll(async () => {
    await fast.connect()
    await general.connect()
  })
  afterAll(async () => {
    await fast.close()
    await general.close()
    for (const s of Object.values(schemas)) await admin.query(`DROP SCHEMA ${s} CASCADE`)
    await admin.end()
  })

  const T = Date.UTC(2026, 10, 27, 8, 0, 0, 7)
  const readings: Telemetry[] = Array.from({ length: 300 }, (_, i) => ({
    deviceId: i % 3 === 0 ? `dev-ü-${i % 7}` : `dev-${i % 7}`,
    tenant: i % 7 === 3 ? null : `t-${i % 2}`,
    ts: i === 5 ? Date.UTC(1970, 0, 1) - 86_400_000 : T + (i % 50) * 1000,
    receivedAt: T + i,
    seq: i % 4 === 0 ? null : i,
    metrics: {
      temperature: 20 + i / 8,
      ok: i % 2 === 0,
      state: i % 5 === 0 ? 'a "quoted"\\ \n value ✓' : 'on',
      big: i === 7 ? 1e300 : -0,
      '7': i,
    },
    meta: (i % 6 === 0 ? { fw: '1.2\t3', ts_source: 'received' } : {}) as Record<string, string>,
    source: (['mqtt', 'http', 'bridge'] as const)[i % 3]!,
  }))
  const dump = async (schema: string) => ({
    telemetry: (
      await admin.query(
        `SELECT device_id, ts, seq, tenant, received_at, source, metrics, meta FROM ${schema}.telemetry ORDER BY device_id, ts, seq`,
      )
    ).rows,
    devices: (await admin.query(`SELECT * FROM ${schema}.devices ORDER BY device_id`)).rows,
  })

  it('stores exactly what the general path stores, last-seen included', async () => {
    const codec = await codecP
    const values = readings.map((r) => codec.encode(r))
    expect(await fast.writeTelemetryAvro!(values.slice(0, 150))).toBe(true)
    expect(await fast.writeTelemetryAvro!(values.slice(150))).toBe(true)
    await general.writeTelemetry(await Promise.all(values.slice(0, 150).map((v) => codec.decode(v))))
    await general.writeTelemetry(await Promise.all(values.slice(150).map((v) => codec.decode(v))))
    const got = await dump(schemas.fast)
    expect(got.telemetry).toHaveLength(300)
    expect(got).toEqual(await dump(schemas.general))
  })

  it('declines, writing nothing, when a key is already stored or the text is not UTF-8', async () => {
    const codec = await codecP
    const again = [codec.encode({ ...readings[0]!, deviceId: 'fresh' }), codec.encode(readings[1]!)]
    expect(await fast.writeTelemetryAvro!(again)).toBe(false)
    const body = codec.encode({ ...readings[2]!, deviceId: 'bad-utf8-x' }).subarray(5)
    body[body.indexOf('bad-utf8-x') + 9] = 0xff // 'x' → a byte that is never UTF-8
    expect(await fast.writeTelemetryAvro!([encodeWire(codec.schemaId, body)])).toBe(false)
    const n = await admin.query(
      `SELECT count(*)::int AS n FROM ${schemas.fast}.telemetry WHERE device_id IN ('fresh') OR device_id LIKE 'bad-utf8%'`,
    )
    expect(n.rows).toEqual([{ n: 0 }])
  })
})
