import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { Pool, type PoolConfig } from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import { SinkWriteError, type Sink } from './sink'
import { postgresDialect } from './sql/dialect'
import { sqlSink, type SqlExecutor } from './sql/sql-sink'

/** SQLSTATE classes worth retrying: connection exceptions (08), insufficient resources (53), operator intervention (57), serialization/deadlock (40). */
const RETRIABLE_CLASSES = new Set(['08', '53', '57', '40'])

/** A pg error as a SinkWriteError: retriable when the network failed or the SQLSTATE class says so. */
export function postgresError(err: unknown): SinkWriteError {
  const code = (err as { code?: string }).code
  // A SQLSTATE (5 characters) says what the database thought; anything else (ECONNRESET…) is the network.
  const sqlstate = code !== undefined && /^[0-9A-Z]{5}$/.test(code)
  const retriable = !sqlstate || RETRIABLE_CLASSES.has(code.slice(0, 2))
  return new SinkWriteError(
    `postgres: ${(err as Error).message}${code ? ` (SQLSTATE ${code})` : ''}`,
    retriable,
    err,
  )
}

/**
 * A pg pool as a SQL executor: a bulk statement is one query whose parameters are column
 * arrays; `copy` is `COPY … FROM STDIN` in the binary format (pg-copy-streams), PostgreSQL's own bulk path, which the
 * sink tries first for telemetry (new rows in the normal case) and which fails as a whole on a
 * key already stored, so that the `ON CONFLICT` statement then decides.
 */
export function postgresExecutor(pool: Pool): SqlExecutor {
  const query = async (text: string, params: unknown[]) => {
    try {
      return (await pool.query(text, params)).rows as Record<string, unknown>[]
    } catch (err) {
      throw postgresError(err)
    }
  }
  return {
    query,
    bulk: async (text, params) => void (await query(text, params)),
    async copy(spec, stream) {
      const client = await pool.connect().catch((err: unknown) => {
        throw postgresError(err)
      })
      try {
        const columns = spec.columns.map((c) => c.name).join(', ')
        await pipeline(
          Readable.from([stream]),
          client.query(copyFrom(`COPY ${spec.name} (${columns}) FROM STDIN (FORMAT binary)`)),
        )
      } catch (err) {
        throw postgresError(err)
      } finally {
        client.release()
      }
    },
    close: () => pool.end(),
  }
}

/**
 * The PostgreSQL sink: each batch is one multi-row statement from parameter arrays (`unnest`),
 * so the statement text never contains data; telemetry is `ON CONFLICT DO NOTHING` on its
 * idempotency key, rollups and alerts are upserts.
 */
export function postgresSink(config: PoolConfig & { schema?: string }): Sink {
  const { schema = 'public', ...pool } = config
  if (!SCHEMA_NAME.test(schema)) throw new Error(`bad schema name ${schema}`)
  const x = postgresExecutor(new Pool({ max: 4, ...pool, options: `-c search_path=${schema}` }))
  const sink = sqlSink('postgres', postgresDialect, x)
  return {
    ...sink,
    async connect() {
      if (schema !== 'public') await x.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`, [])
      await sink.connect()
    },
  }
}

/** Schema names that may appear in SQL text. */
export const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/
