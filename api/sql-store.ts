import type { SqlDialect } from '../consumers/sinks/sql/dialect'
import type { SqlExecutor } from '../consumers/sinks/sql/sql-sink'
import { ms, msOrNull, type AlertRow, type DeviceRow, type ReadStore, type RollupRow } from './store'

type Row = Record<string, unknown>

/** Builds a statement's parameter list in text order ($n for PostgreSQL, ? for CrateDB). */
class Params {
  readonly values: unknown[] = []
  constructor(private readonly d: SqlDialect) {}
  add(v: unknown): string {
    this.values.push(v)
    return this.d.p(this.values.length)
  }
  ts(v: number): string {
    return this.add(this.d.value('timestamp', v))
  }
}

const json = (v: unknown) =>
  typeof v === 'string' ? (JSON.parse(v) as Record<string, never>) : ((v ?? {}) as Record<string, never>)

const deviceRow = (r: Row): DeviceRow => ({
  deviceId: r.device_id as string,
  tenant: (r.tenant as string | null) ?? null,
  site: (r.site as string | null) ?? null,
  model: (r.model as string | null) ?? null,
  tags: json(r.tags),
  registered: Boolean(r.registered),
  lastSeen: msOrNull(r.last_seen),
})

const alertRow = (r: Row): AlertRow => ({
  alertId: r.alert_id as string,
  ruleId: r.rule_id as string,
  ruleName: r.rule_name as string,
  deviceId: r.device_id as string,
  tenant: (r.tenant as string | null) ?? null,
  severity: r.severity as string,
  state: r.state as 'open' | 'cleared',
  metric: (r.metric as string | null) ?? null,
  value: (r.value as number | null) ?? null,
  message: r.message as string,
  raisedAt: ms(r.raised_at),
  updatedAt: ms(r.updated_at),
  clearedAt: msOrNull(r.cleared_at),
  acknowledgedAt: msOrNull(r.acknowledged_at),
  acknowledgedBy: (r.acknowledged_by as string | null) ?? null,
})

const rollupRow = (r: Row): RollupRow => ({
  deviceId: r.device_id as string,
  metric: r.metric as string,
  windowMs: Number(r.window_ms),
  windowStart: ms(r.window_start),
  windowEnd: ms(r.window_end),
  count: Number(r.count),
  min: r.min as number,
  max: r.max as number,
  sum: r.sum as number,
  avg: r.avg as number,
  first: r.first as number,
  last: r.last as number,
  kind: r.kind as string,
})

const DEVICE_COLS = 'device_id, tenant, site, model, tags, registered, last_seen'
const ALERT_COLS =
  'alert_id, rule_id, rule_name, device_id, tenant, severity, state, metric, value, message, raised_at, updated_at, cleared_at, acknowledged_at, acknowledged_by'

/** The query side of the SQL stores (PostgreSQL, CrateDB): the sinks' model, one dialect each. */
export function sqlReadStore(name: string, d: SqlDialect, x: SqlExecutor): ReadStore {
  const P = () => new Params(d)
  return {
    name,
    ping: async () => void (await x.query('SELECT 1', [])),
    async devices(q) {
      const p = P()
      const where = [
        q.tenant !== undefined ? `tenant = ${p.add(q.tenant)}` : null,
        q.after !== undefined ? `device_id > ${p.add(q.after)}` : null,
      ].filter(Boolean)
      const rows = await x.query(
        `SELECT ${DEVICE_COLS} FROM devices${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY device_id LIMIT ${p.add(q.limit)}`,
        p.values,
      )
      return rows.map(deviceRow)
    },
    async device(id) {
      const p = P()
      const [r] = await x.query(`SELECT ${DEVICE_COLS} FROM devices WHERE device_id = ${p.add(id)}`, p.values)
      return r ? deviceRow(r) : null
    },
    async readings(q) {
      const p = P()
      const rows = await x.query(
        `SELECT device_id, ts, seq, tenant, received_at, metrics, meta FROM telemetry WHERE device_id = ${p.add(q.deviceId)} AND ts >= ${p.ts(q.from)} AND ts < ${p.ts(q.to)} ORDER BY ts, seq LIMIT ${p.add(q.limit)}`,
        p.values,
      )
      return rows.map((r) => ({
        deviceId: r.device_id as string,
        ts: ms(r.ts),
        seq: Number(r.seq) === -1 ? null : Number(r.seq),
        tenant: (r.tenant as string | null) ?? null,
        receivedAt: ms(r.received_at),
        metrics: json(r.metrics),
        meta: json(r.meta),
      }))
    },
    async series(q) {
      const p = P()
      const bucket = d.bucket('ts', () => p.add(q.intervalMs))
      // PostgreSQL numbers its parameters; CrateDB's ? follow the text: add them in text order.
      const { expr, isNumber } = d.metricValue(q.metric, () => p.add(q.metric))
      const agg = q.agg === 'last' ? d.lastValue(expr, 'ts') : `${q.agg}(${expr})`
      const device = p.add(q.deviceId)
      const from = p.ts(q.from)
      const to = p.ts(q.to)
      const rows = await x.query(
        `SELECT ${bucket} AS t, ${agg} AS v, count(*) AS n ` +
          `FROM telemetry WHERE device_id = ${device} AND ts >= ${from} AND ts < ${to} AND ${isNumber} GROUP BY 1 ORDER BY 1`,
        p.values,
      )
      return rows.map((r) => ({ t: Number(r.t), v: r.v === null ? null : Number(r.v), n: Number(r.n) }))
    },
    async metricSummary(q) {
      const p = P()
      const { expr, isNumber } = d.metricValue(q.metric, () => p.add(q.metric))
      const last = d.lastValue(expr, 'ts')
      const from = p.ts(q.from)
      const to = p.ts(q.to)
      const rows = await x.query(
        `SELECT device_id, ${last} AS last, min(${expr}) AS min, max(${expr}) AS max, avg(${expr}) AS avg, count(*) AS n ` +
          `FROM telemetry WHERE ts >= ${from} AND ts < ${to} AND ${isNumber} GROUP BY device_id ORDER BY device_id LIMIT ${p.add(q.limit)}`,
        p.values,
      )
      const num = (v: unknown) => (v === null || v === undefined ? null : Number(v))
      return rows.map((r) => ({
        deviceId: r.device_id as string,
        last: num(r.last),
        min: num(r.min),
        max: num(r.max),
        avg: num(r.avg),
        n: Number(r.n),
      }))
    },
    async rollups(q) {
      const p = P()
      const rows = await x.query(
        `SELECT device_id, metric, window_ms, window_start, window_end, count, min, max, sum, avg, first, last, kind FROM rollups ` +
          `WHERE device_id = ${p.add(q.deviceId)} AND window_ms = ${p.add(q.windowMs)} AND window_start >= ${p.ts(q.from)} AND window_start < ${p.ts(q.to)}` +
          `${q.metric !== undefined ? ` AND metric = ${p.add(q.metric)}` : ''} ORDER BY window_start, metric LIMIT ${p.add(q.limit)}`,
        p.values,
      )
      return rows.map(rollupRow)
    },
    async alerts(q) {
      const p = P()
      const where = [
        q.deviceId !== undefined ? `device_id = ${p.add(q.deviceId)}` : null,
        q.state !== undefined ? `state = ${p.add(q.state)}` : null,
      ].filter(Boolean)
      const rows = await x.query(
        `SELECT ${ALERT_COLS} FROM alerts${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY raised_at DESC, alert_id LIMIT ${p.add(q.limit)}`,
        p.values,
      )
      return rows.map(alertRow)
    },
    async alert(id) {
      const p = P()
      const [r] = await x.query(`SELECT ${ALERT_COLS} FROM alerts WHERE alert_id = ${p.add(id)}`, p.values)
      return r ? alertRow(r) : null
    },
    async acknowledge(id, by, at) {
      const p = P()
      const ts = p.ts(at)
      const who = p.add(by)
      await x.query(
        `UPDATE alerts SET acknowledged_at = ${ts}, acknowledged_by = ${who} WHERE alert_id = ${p.add(id)} AND acknowledged_at IS NULL`,
        p.values,
      )
      return (await this.alert(id)) !== null
    },
    close: () => x.close(),
  }
}
