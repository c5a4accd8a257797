import { Client, types, type ClientOptions } from 'cassandra-driver'
import PQueue from 'p-queue'
import type { Alert, Rollup, Telemetry } from '../../schemas/types.generated'
import {
  ALERT_EVENT_RANK,
  lastSeenByDevice,
  SinkWriteError,
  windowMs,
  type DeviceChange,
  type Sink,
} from './sink'
import { alertState, lastPerKey } from './sql/tables'

/**
 * The Cassandra model, one table per query:
 * - telemetry_by_device_day: a partition per device and UTC day, rows by (ts, seq) — the idempotency key;
 * - rollups_by_device_day: a partition per device, window size and day, rows by (metric, window start);
 * - alerts_by_device (newest first) and alerts_by_id (to find an alert's device);
 * - devices: the registry entry and the last-seen time.
 */
export function cassandraMigrations(keyspace: string, replicationFactor: number): string[] {
  return [
    `CREATE KEYSPACE IF NOT EXISTS ${keyspace} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': ${replicationFactor}}`,
    `CREATE TABLE IF NOT EXISTS ${keyspace}.telemetry_by_device_day (
      device_id text, day date, ts timestamp, seq bigint,
      tenant text, received_at timestamp, source text,
      metrics map<text, text>, meta map<text, text>,
      PRIMARY KEY ((device_id, day), ts, seq)
    ) WITH CLUSTERING ORDER BY (ts ASC, seq ASC)`,
    `CREATE TABLE IF NOT EXISTS ${keyspace}.rollups_by_device_day (
      device_id text, window_ms bigint, day date, metric text, window_start timestamp,
      window_end timestamp, count bigint, min double, max double, sum double, avg double,
      first double, last double, kind text,
      PRIMARY KEY ((device_id, window_ms, day), metric, window_start)
    )`,
    `CREATE TABLE IF NOT EXISTS ${keyspace}.alerts_by_device (
      device_id text, raised_at timestamp, alert_id text,
      rule_id text, rule_name text, tenant text, severity text, state text, metric text,
      value double, message text, updated_at timestamp, cleared_at timestamp,
      acknowledged_at timestamp, acknowledged_by text,
      PRIMARY KEY ((device_id), raised_at, alert_id)
    ) WITH CLUSTERING ORDER BY (raised_at DESC, alert_id ASC)`,
    `CREATE TABLE IF NOT EXISTS ${keyspace}.alerts_by_id (
      alert_id text PRIMARY KEY, device_id text, raised_at timestamp
    )`,
    `CREATE TABLE IF NOT EXISTS ${keyspace}.devices (
      device_id text PRIMARY KEY, tenant text, site text, model text,
      tags map<text, text>, limits text, registered boolean, last_seen timestamp
    )`,
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

const day = (ms: number) => types.LocalDate.fromDate(new Date(ms))
const long = (n: number) => types.Long.fromNumber(n)
const text = (m: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(m).map(([k, v]) => [k, String(v)]))

/**
 * The Cassandra sink: prepared statements (an INSERT is an upsert by nature: a replay rewrites
 * the same row), token-aware through the driver's default policy, `concurrency` requests in
 * flight (p-queue), and an optional TTL on telemetry. Metric values are stored as text in a map
 * (numbers, booleans and strings alike; the envelope keeps the types).
 *
 * Alert events are written with the cell timestamp `ts × 1000 + rank` (raised < updated <
 * cleared), and last-seen with `ts × 1000`: Cassandra keeps the cell with the highest timestamp,
 * so the newest event wins whatever order a replay or a rebalance delivers them in.
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
  const ks = o.keyspace
  const q = {
    telemetry: `INSERT INTO ${ks}.telemetry_by_device_day
      (device_id, day, ts, seq, tenant, received_at, source, metrics, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)${
        o.ttlSeconds ? ` USING TTL ${Math.floor(o.ttlSeconds)}` : ''
      }`,
    lastSeen: `UPDATE ${ks}.devices USING TIMESTAMP ? SET last_seen = ? WHERE device_id = ?`,
    rollup: `INSERT INTO ${ks}.rollups_by_device_day
      (device_id, window_ms, day, metric, window_start, window_end, count, min, max, sum, avg, first, last, kind)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    retract: `DELETE FROM ${ks}.rollups_by_device_day WHERE device_id = ? AND window_ms = ? AND day = ? AND metric = ? AND window_start = ?`,
    alert: `INSERT INTO ${ks}.alerts_by_device
      (device_id, raised_at, alert_id, rule_id, rule_name, tenant, severity, state, metric, value, message, updated_at, cleared_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`,
    alertById: `INSERT INTO ${ks}.alerts_by_id (alert_id, device_id, raised_at) VALUES (?, ?, ?)`,
    ack: `UPDATE ${ks}.alerts_by_device SET acknowledged_at = ?, acknowledged_by = ? WHERE device_id = ? AND raised_at = ? AND alert_id = ?`,
    device: `INSERT INTO ${ks}.devices (device_id, tenant, site, model, tags, limits, registered) VALUES (?, ?, ?, ?, ?, ?, true)`,
    deviceGone: `DELETE FROM ${ks}.devices WHERE device_id = ?`,
  }
  const queue = new PQueue({ concurrency: o.concurrency ?? 64 })
  /** Runs the statements, `concurrency` at a time; the first failure is the batch's error. */
  const run = async (stmts: [string, unknown[]][]) => {
    try {
      await Promise.all(stmts.map(([s, p]) => queue.add(() => client.execute(s, p, { prepare: true }))))
    } catch (err) {
      if (err instanceof SinkWriteError) throw err
      const code = (err as { code?: number }).code
      const retriable = code === undefined || RETRIABLE.has(code)
      throw new SinkWriteError(`cassandra: ${(err as Error).message}`, retriable, err)
    }
  }
  const alertRow = (a: Alert) => [
    a.deviceId,
    new Date(a.raisedAt),
    a.alertId,
    a.ruleId,
    a.ruleName,
    a.tenant,
    a.severity,
    alertState(a),
    a.metric,
    a.value,
    a.message,
    new Date(a.ts),
    a.event === 'cleared' ? new Date(a.ts) : null,
    long(a.ts * 1000 + ALERT_EVENT_RANK[a.event]),
  ]
  const rollupKey = (r: Rollup) => [
    r.deviceId,
    long(windowMs(r)),
    day(r.windowStart),
    r.metric,
    new Date(r.windowStart),
  ]
  return {
    name: 'cassandra',
    async connect() {
      await client.connect()
      for (const m of cassandraMigrations(ks, o.replicationFactor ?? 1)) await client.execute(m)
    },
    async writeTelemetry(rs: Telemetry[]) {
      // Cassandra stores an empty key part without complaint; the model has no such device.
      if (rs.some((r) => r.deviceId.length === 0))
        throw new SinkWriteError('cassandra: a reading with an empty device id', false)
      await run(
        rs.map((r) => [
          q.telemetry,
          [
            r.deviceId,
            day(r.ts),
            new Date(r.ts),
            long(r.seq ?? -1),
            r.tenant,
            new Date(r.receivedAt),
            r.source,
            text(r.metrics),
            r.meta,
          ],
        ]),
      )
      await run(
        [...lastSeenByDevice(rs)].map(([id, ts]) => [q.lastSeen, [long(ts * 1000), new Date(ts), id]]),
      )
    },
    async writeRollups(rs) {
      const last = lastPerKey(
        rs,
        (r) => `${r.deviceId}\u0000${r.metric}\u0000${windowMs(r)}\u0000${r.windowStart}`,
      )
      await run(
        last.map((r) =>
          r.kind === 'retract'
            ? [q.retract, rollupKey(r)]
            : [
                q.rollup,
                [
                  ...rollupKey(r),
                  new Date(r.windowEnd),
                  long(r.count),
                  r.min,
                  r.max,
                  r.sum,
                  r.avg,
                  r.first,
                  r.last,
                  r.kind,
                ],
              ],
        ),
      )
    },
    async writeAlerts(as) {
      const lifecycle = as.filter((a) => a.event !== 'acknowledged')
      await run([
        ...lifecycle.map((a): [string, unknown[]] => [q.alert, alertRow(a)]),
        ...lifecycle
          .filter((a) => a.event === 'raised')
          .map((a): [string, unknown[]] => [q.alertById, [a.alertId, a.deviceId, new Date(a.raisedAt)]]),
      ])
      await run(
        as
          .filter((a) => a.event === 'acknowledged')
          .map((a) => [q.ack, [new Date(a.ts), a.message, a.deviceId, new Date(a.raisedAt), a.alertId]]),
      )
    },
    async writeDevices(cs: DeviceChange[]) {
      await run(
        lastPerKey(cs, (c) => c.deviceId).map((c) =>
          c.device === null
            ? [q.deviceGone, [c.deviceId]]
            : [
                q.device,
                [
                  c.deviceId,
                  c.device.tenant,
                  c.device.site,
                  c.device.model,
                  c.device.tags,
                  JSON.stringify(c.device.limits),
                ],
              ],
        ),
      )
    },
    close: () => client.shutdown(),
  }
}
