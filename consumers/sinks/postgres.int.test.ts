import { Pool } from 'pg'
import type { Telemetry } from '../../schemas/types.generated'
import { serverEnv, uniqueName } from '../../test/servers'
import { postgresExecutor } from './postgres'
import { SinkWriteError } from './sink'
import { postgresDialect } from './sql/dialect'
import { sqlMigrations } from './sql/sql-sink'
import { TELEMETRY } from './sql/tables'

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
    await x.copy!(TELEMETRY, rows)
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
    const err = await x.copy!(TELEMETRY, [{ ...rows[0]!, deviceId: 'd-3' }, rows[0]!]).catch(
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(SinkWriteError)
    expect((err as SinkWriteError).retriable).toBe(false)
    expect(await x.query("SELECT count(*)::int AS n FROM telemetry WHERE device_id = 'd-3'", [])).toEqual([
      { n: 0 },
    ])
  })
})
