import { Pool, type PoolConfig } from 'pg'
import { SinkWriteError, type Sink } from './sink'

/** SQLSTATE classes worth retrying: connection exceptions (08), insufficient resources (53), operator intervention (57), serialization/deadlock (40). */
const RETRIABLE_CLASSES = new Set(['08', '53', '57', '40'])

/** The telemetry table: one row per reading; `(device_id, ts, seq)` is the idempotency key (`seq` -1 when the device sends none). */
export const POSTGRES_MIGRATIONS = [
  `CREATE TABLE IF NOT EXISTS telemetry (
    device_id   text        NOT NULL,
    ts          timestamptz NOT NULL,
    seq         bigint      NOT NULL DEFAULT -1,
    tenant      text,
    received_at timestamptz NOT NULL,
    source      text        NOT NULL,
    metrics     jsonb       NOT NULL,
    meta        jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (device_id, ts, seq)
  )`,
  `CREATE INDEX IF NOT EXISTS telemetry_ts ON telemetry (ts)`,
]

/**
 * The PostgreSQL telemetry sink: one multi-row INSERT per batch from parameter arrays
 * (`unnest`), so the statement text never contains data; `ON CONFLICT DO NOTHING` on the
 * idempotency key makes replays and redeliveries write nothing new.
 */
export function postgresSink(config: PoolConfig & { table?: string }): Sink {
  const pool = new Pool({ max: 4, ...config })
  const table = config.table ?? 'telemetry'
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(table)) throw new Error(`bad table name ${table}`)
  const sql = `INSERT INTO ${table} (device_id, ts, seq, tenant, received_at, source, metrics, meta)
    SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::bigint[], $4::text[], $5::timestamptz[], $6::text[], $7::jsonb[], $8::jsonb[])
    ON CONFLICT (device_id, ts, seq) DO NOTHING`
  return {
    name: 'postgres',
    async connect() {
      for (const m of POSTGRES_MIGRATIONS)
        await pool.query(table === 'telemetry' ? m : m.replaceAll('telemetry', table))
    },
    async writeBatch(rs) {
      if (rs.length === 0) return
      try {
        await pool.query(sql, [
          rs.map((r) => r.deviceId),
          rs.map((r) => new Date(r.ts)),
          rs.map((r) => r.seq ?? -1),
          rs.map((r) => r.tenant),
          rs.map((r) => new Date(r.receivedAt)),
          rs.map((r) => r.source),
          rs.map((r) => JSON.stringify(r.metrics)),
          rs.map((r) => JSON.stringify(r.meta)),
        ])
      } catch (err) {
        const code = (err as { code?: string }).code
        // A SQLSTATE (5 characters) says what the database thought; anything else (ECONNRESET…) is the network.
        const sqlstate = code !== undefined && /^[0-9A-Z]{5}$/.test(code)
        const retriable = !sqlstate || RETRIABLE_CLASSES.has(code.slice(0, 2))
        throw new SinkWriteError(
          `postgres: ${(err as Error).message}${code ? ` (SQLSTATE ${code})` : ''}`,
          retriable,
          err,
        )
      }
    },
    close: () => pool.end(),
  }
}
