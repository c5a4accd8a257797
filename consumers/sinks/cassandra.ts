import { Client, types, type ClientOptions } from 'cassandra-driver'
import type { Telemetry } from '../../core/envelope/telemetry'
import { SinkWriteError, type Sink } from './sink'

/** The telemetry model: a partition per device and UTC day, rows by (ts, seq) — the idempotency key. */
export function cassandraMigrations(keyspace: string, replicationFactor: number): string[] {
  return [
    `CREATE KEYSPACE IF NOT EXISTS ${keyspace} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': ${replicationFactor}}`,
    `CREATE TABLE IF NOT EXISTS ${keyspace}.telemetry_by_device_day (
      device_id text, day date, ts timestamp, seq bigint,
      tenant text, received_at timestamp, source text,
      metrics map<text, text>, meta map<text, text>,
      PRIMARY KEY ((device_id, day), ts, seq)
    ) WITH CLUSTERING ORDER BY (ts ASC, seq ASC)`,
  ]
}

/** Driver errors worth retrying: unavailable, timeouts, overloaded, no host reachable. */
const RETRIABLE = new Set([
  types.responseErrorCodes.unavailableException,
  types.responseErrorCodes.writeTimeout,
  types.responseErrorCodes.readTimeout,
  types.responseErrorCodes.overloaded,
  types.responseErrorCodes.isBootstrapping,
])

/**
 * The Cassandra telemetry sink: prepared INSERTs (an upsert by nature: a replay rewrites the
 * same row), token-aware through the driver's default policy, with bounded concurrency
 * (`concurrency` requests in flight) and an optional TTL. Metric values are stored as text in a
 * map (numbers, booleans and strings alike; the envelope keeps the types).
 */
export function cassandraSink(o: {
  client: ClientOptions
  keyspace: string
  replicationFactor?: number
  ttlSeconds?: number
  concurrency?: number
}): Sink {
  if (!/^[a-z_][a-z0-9_]{0,47}$/.test(o.keyspace)) throw new Error(`bad keyspace name ${o.keyspace}`)
  const client = new Client(o.client)
  const insert = `INSERT INTO ${o.keyspace}.telemetry_by_device_day
    (device_id, day, ts, seq, tenant, received_at, source, metrics, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)${
      o.ttlSeconds ? ` USING TTL ${Math.floor(o.ttlSeconds)}` : ''
    }`
  const params = (r: Telemetry) => [
    r.deviceId,
    types.LocalDate.fromDate(new Date(r.ts)),
    new Date(r.ts),
    types.Long.fromNumber(r.seq ?? -1),
    r.tenant,
    new Date(r.receivedAt),
    r.source,
    Object.fromEntries(Object.entries(r.metrics).map(([k, v]) => [k, String(v)])),
    r.meta,
  ]
  return {
    name: 'cassandra',
    async connect() {
      await client.connect()
      for (const m of cassandraMigrations(o.keyspace, o.replicationFactor ?? 1)) await client.execute(m)
    },
    async writeBatch(rs) {
      // Cassandra stores an empty key part without complaint; the model has no such device.
      const bad = rs.find((r) => r.deviceId.length === 0)
      if (bad) throw new SinkWriteError('cassandra: a reading with an empty device id', false)
      const limit = o.concurrency ?? 64
      let next = 0
      const worker = async () => {
        while (next < rs.length) {
          const r = rs[next++]!
          await client.execute(insert, params(r), { prepare: true })
        }
      }
      try {
        await Promise.all(Array.from({ length: Math.min(limit, rs.length) }, worker))
      } catch (err) {
        const code = (err as { code?: number }).code
        const retriable = code === undefined || RETRIABLE.has(code)
        throw new SinkWriteError(`cassandra: ${(err as Error).message}`, retriable, err)
      }
    },
    close: () => client.shutdown(),
  }
}
