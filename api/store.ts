/** Aggregations of a time series over each interval. */
export const AGGS = ['avg', 'min', 'max', 'sum', 'count', 'last'] as const
export type Agg = (typeof AGGS)[number]

export interface DeviceRow {
  deviceId: string
  tenant: string | null
  site: string | null
  model: string | null
  tags: Record<string, string>
  registered: boolean
  lastSeen: number | null
}

export interface ReadingRow {
  deviceId: string
  ts: number
  seq: number | null
  tenant: string | null
  receivedAt: number
  metrics: Record<string, unknown>
  meta: Record<string, string>
}

export interface SeriesPoint {
  /** Interval start, epoch ms. */
  t: number
  v: number | null
  /** Readings in the interval that had the metric. */
  n: number
}

export interface RollupRow {
  deviceId: string
  metric: string
  windowMs: number
  windowStart: number
  windowEnd: number
  count: number
  min: number
  max: number
  sum: number
  avg: number
  first: number
  last: number
  kind: string
}

export interface AlertRow {
  alertId: string
  ruleId: string
  ruleName: string
  deviceId: string
  tenant: string | null
  severity: string
  state: 'open' | 'cleared'
  metric: string | null
  value: number | null
  message: string
  raisedAt: number
  updatedAt: number
  clearedAt: number | null
  acknowledgedAt: number | null
  acknowledgedBy: string | null
}

export interface MetricSummaryRow {
  deviceId: string
  last: number | null
  min: number | null
  max: number | null
  avg: number | null
  n: number
}

/** Time ranges are half-open: `from` ≤ t < `to`, epoch ms. */
export interface Range {
  from: number
  to: number
}

/**
 * What the query API reads, from whichever store the sinks write (PostgreSQL, CrateDB,
 * Cassandra, or the embedded store). Every implementation passes values only as parameters.
 */
export interface ReadStore {
  name: string
  ping(): Promise<void>
  devices(q: { tenant?: string; after?: string; limit: number }): Promise<DeviceRow[]>
  device(deviceId: string): Promise<DeviceRow | null>
  readings(q: Range & { deviceId: string; limit: number }): Promise<ReadingRow[]>
  series(
    q: Range & { deviceId: string; metric: string; intervalMs: number; agg: Agg },
  ): Promise<SeriesPoint[]>
  rollups(
    q: Range & { deviceId: string; metric?: string; windowMs: number; limit: number },
  ): Promise<RollupRow[]>
  alerts(q: { deviceId?: string; state?: 'open' | 'cleared'; limit: number }): Promise<AlertRow[]>
  alert(alertId: string): Promise<AlertRow | null>
  /** Per device: a metric's last, min, max and average over a range (the battery table). SQL stores only. */
  metricSummary?(q: Range & { metric: string; limit: number }): Promise<MetricSummaryRow[]>
  /** Marks an alert acknowledged (the first acknowledgement stands); false when there is no such alert. */
  acknowledge(alertId: string, by: string, at: number): Promise<boolean>
  close(): Promise<void>
}

/** Epoch ms of a driver's timestamp (pg gives Date, CrateDB's JSON gives numbers). */
export function ms(v: unknown): number {
  return v instanceof Date ? v.getTime() : Number(v)
}
export function msOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : ms(v)
}

/** Aggregates numeric values per interval, intervals aligned to the epoch like the SQL stores' (for stores that cannot aggregate server-side). */
export function aggregate(points: { ts: number; v: number }[], intervalMs: number, agg: Agg): SeriesPoint[] {
  const buckets = new Map<
    number,
    { n: number; sum: number; min: number; max: number; last: number; lastTs: number }
  >()
  for (const p of points) {
    const t = Math.floor(p.ts / intervalMs) * intervalMs
    const b = buckets.get(t)
    if (!b) buckets.set(t, { n: 1, sum: p.v, min: p.v, max: p.v, last: p.v, lastTs: p.ts })
    else {
      b.n++
      b.sum += p.v
      if (p.v < b.min) b.min = p.v
      if (p.v > b.max) b.max = p.v
      if (p.ts >= b.lastTs) {
        b.last = p.v
        b.lastTs = p.ts
      }
    }
  }
  return [...buckets]
    .sort(([a], [b]) => a - b)
    .map(([t, b]) => ({
      t,
      n: b.n,
      v: agg === 'avg' ? b.sum / b.n : agg === 'count' ? b.n : agg === 'last' ? b.last : b[agg],
    }))
}
