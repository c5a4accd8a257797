import { Client, types, type ClientOptions } from 'cassandra-driver'
import {
  aggregate,
  type AlertRow,
  type DeviceRow,
  type ReadStore,
  type ReadingRow,
  type RollupRow,
} from './store'

const DAY = 86_400_000
type Row = types.Row

/** The UTC days that [from, to) touches, as the model's `day` partition keys. */
function days(from: number, to: number): types.LocalDate[] {
  const out: types.LocalDate[] = []
  for (let d = Math.floor(from / DAY) * DAY; d < to; d += DAY) out.push(types.LocalDate.fromDate(new Date(d)))
  return out
}

const date = (v: unknown) => (v instanceof Date ? v.getTime() : null)

const deviceRow = (r: Row): DeviceRow => ({
  deviceId: r.device_id,
  tenant: r.tenant ?? null,
  site: r.site ?? null,
  model: r.model ?? null,
  tags: r.tags ?? {},
  registered: Boolean(r.registered),
  lastSeen: date(r.last_seen),
})

const alertRow = (r: Row): AlertRow => ({
  alertId: r.alert_id,
  ruleId: r.rule_id,
  ruleName: r.rule_name,
  deviceId: r.device_id,
  tenant: r.tenant ?? null,
  severity: r.severity,
  state: r.state,
  metric: r.metric ?? null,
  value: r.value ?? null,
  message: r.message,
  raisedAt: date(r.raised_at)!,
  updatedAt: date(r.updated_at)!,
  clearedAt: date(r.cleared_at),
  acknowledgedAt: date(r.acknowledged_at),
  acknowledgedBy: r.acknowledged_by ?? null,
})

/**
 * The query side of the Cassandra model: one partition read per (device, day) in the range,
 * paged by the driver; series are aggregated here (CQL has no GROUP BY over time buckets).
 * Metric values are stored as text: numbers are parsed back, other values are not in series.
 */
export function cassandraReadStore(o: { client: ClientOptions; keyspace: string }): ReadStore {
  if (!/^[a-z_][a-z0-9_]{0,47}$/.test(o.keyspace)) throw new Error(`bad keyspace name ${o.keyspace}`)
  const client = new Client(o.client)
  const ks = o.keyspace
  let connected: Promise<void> | undefined
  const exec = async (cql: string, params: unknown[], fetchSize = 5000) => {
    await (connected ??= client.connect())
    return client.execute(cql, params, { prepare: true, fetchSize })
  }
  /** Every row of a paged query, up to `limit`. */
  const all = async (cql: string, params: unknown[], limit: number): Promise<Row[]> => {
    await (connected ??= client.connect())
    const rows: Row[] = []
    let pageState: string | undefined
    do {
      const rs = await client.execute(cql, params, {
        prepare: true,
        fetchSize: Math.min(5000, limit),
        pageState,
      })
      rows.push(...rs.rows)
      pageState = rs.pageState ?? undefined
    } while (pageState && rows.length < limit)
    return rows.slice(0, limit)
  }
  const telemetry = async (deviceId: string, from: number, to: number, limit: number, cols: string) => {
    const rows: Row[] = []
    for (const day of days(from, to)) {
      if (rows.length >= limit) break
      rows.push(
        ...(await all(
          `SELECT ${cols} FROM ${ks}.telemetry_by_device_day WHERE device_id = ? AND day = ? AND ts >= ? AND ts < ?`,
          [deviceId, day, new Date(from), new Date(to)],
          limit - rows.length,
        )),
      )
    }
    return rows
  }
  const store: ReadStore = {
    name: 'cassandra',
    ping: async () => void (await exec('SELECT release_version FROM system.local', [])),
    async devices(q) {
      // Token order (Cassandra's own); `after` continues from a device id.
      const rows = q.after
        ? await all(
            `SELECT * FROM ${ks}.devices WHERE token(device_id) > token(?)`,
            [q.after],
            q.tenant ? 100_000 : q.limit,
          )
        : await all(`SELECT * FROM ${ks}.devices`, [], q.tenant ? 100_000 : q.limit)
      return rows
        .map(deviceRow)
        .filter((d) => q.tenant === undefined || d.tenant === q.tenant)
        .slice(0, q.limit)
    },
    async device(id) {
      const rs = await exec(`SELECT * FROM ${ks}.devices WHERE device_id = ?`, [id])
      return rs.rows[0] ? deviceRow(rs.rows[0]) : null
    },
    async readings(q) {
      const rows = await telemetry(
        q.deviceId,
        q.from,
        q.to,
        q.limit,
        'ts, seq, tenant, received_at, metrics, meta',
      )
      return rows.map((r): ReadingRow => ({
        deviceId: q.deviceId,
        ts: date(r.ts)!,
        seq: Number(r.seq) === -1 ? null : Number(r.seq),
        tenant: r.tenant ?? null,
        receivedAt: date(r.received_at)!,
        metrics: Object.fromEntries(
          Object.entries((r.metrics ?? {}) as Record<string, string>).map(([k, v]) => [k, textValue(v)]),
        ),
        meta: r.meta ?? {},
      }))
    },
    async series(q) {
      const rows = await telemetry(q.deviceId, q.from, q.to, Number.MAX_SAFE_INTEGER, 'ts, metrics')
      const points: { ts: number; v: number }[] = []
      for (const r of rows) {
        const raw = (r.metrics as Record<string, string> | null)?.[q.metric]
        const v = raw === undefined ? NaN : Number(raw)
        if (raw !== undefined && raw !== '' && Number.isFinite(v)) points.push({ ts: date(r.ts)!, v })
      }
      return aggregate(points, q.intervalMs, q.agg)
    },
    async rollups(q) {
      const out: RollupRow[] = []
      for (const day of days(q.from, q.to)) {
        const rows = await all(
          `SELECT * FROM ${ks}.rollups_by_device_day WHERE device_id = ? AND window_ms = ? AND day = ?${q.metric !== undefined ? ' AND metric = ?' : ''}`,
          [q.deviceId, types.Long.fromNumber(q.windowMs), day, ...(q.metric !== undefined ? [q.metric] : [])],
          100_000,
        )
        for (const r of rows) {
          const start = date(r.window_start)!
          if (start < q.from || start >= q.to) continue
          out.push({
            deviceId: r.device_id,
            metric: r.metric,
            windowMs: Number(r.window_ms),
            windowStart: start,
            windowEnd: date(r.window_end)!,
            count: Number(r.count),
            min: r.min,
            max: r.max,
            sum: r.sum,
            avg: r.avg,
            first: r.first,
            last: r.last,
            kind: r.kind,
          })
        }
      }
      return out
        .sort(
          (a, b) => a.windowStart - b.windowStart || (a.metric < b.metric ? -1 : a.metric > b.metric ? 1 : 0),
        )
        .slice(0, q.limit)
    },
    async alerts(q) {
      const rows = q.deviceId
        ? await all(`SELECT * FROM ${ks}.alerts_by_device WHERE device_id = ?`, [q.deviceId], 100_000)
        : await all(`SELECT * FROM ${ks}.alerts_by_device`, [], 100_000)
      return rows
        .map(alertRow)
        .filter((a) => q.state === undefined || a.state === q.state)
        .sort((a, b) => b.raisedAt - a.raisedAt || (a.alertId < b.alertId ? -1 : 1))
        .slice(0, q.limit)
    },
    async alert(id) {
      const key = (await exec(`SELECT device_id, raised_at FROM ${ks}.alerts_by_id WHERE alert_id = ?`, [id]))
        .rows[0]
      if (!key) return null
      const rs = await exec(
        `SELECT * FROM ${ks}.alerts_by_device WHERE device_id = ? AND raised_at = ? AND alert_id = ?`,
        [key.device_id, key.raised_at, id],
      )
      return rs.rows[0] ? alertRow(rs.rows[0]) : null
    },
    async acknowledge(id, by, at) {
      const a = await store.alert(id)
      if (!a) return false
      if (a.acknowledgedAt !== null) return true
      await exec(
        `UPDATE ${ks}.alerts_by_device SET acknowledged_at = ?, acknowledged_by = ? WHERE device_id = ? AND raised_at = ? AND alert_id = ?`,
        [new Date(at), by, a.deviceId, new Date(a.raisedAt), id],
      )
      return true
    },
    close: () => client.shutdown(),
  }
  return store
}

/** A metric value stored as text, typed again: numbers and booleans back, else the string. */
function textValue(v: string): unknown {
  if (v === 'true') return true
  if (v === 'false') return false
  const n = Number(v)
  return v !== '' && Number.isFinite(n) ? n : v
}
