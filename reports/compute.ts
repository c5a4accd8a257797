import type { AlertRow, ReadingRow } from '../api/store'

/** One device's day: readings, per-metric min/max/avg, gaps, alerts raised. */
export interface DailyDeviceRow {
  day: string
  deviceId: string
  tenant: string | null
  readings: number
  metrics: Record<string, { min: number; max: number; avg: number; count: number }>
  /** Silences longer than the gap threshold between consecutive readings (and the longest, ms). */
  gaps: number
  longestGapMs: number
  alertsRaised: number
}

/** One tenant's month: the basis for billing. */
export interface MonthlyUsageRow {
  month: string
  tenant: string
  readings: number
  devices: number
  /** Stored bytes, estimated as the readings' encoded size (metrics and meta as JSON, plus a fixed row overhead). */
  storageBytes: number
}

export const ROW_OVERHEAD_BYTES = 64

export function dailyDeviceRow(
  day: string,
  deviceId: string,
  tenant: string | null,
  readings: ReadingRow[],
  alerts: AlertRow[],
  gapMs: number,
): DailyDeviceRow {
  const sorted = [...readings].sort((a, b) => a.ts - b.ts)
  const metrics: DailyDeviceRow['metrics'] = {}
  for (const r of sorted)
    for (const [k, v] of Object.entries(r.metrics)) {
      if (typeof v !== 'number') continue
      const m = (metrics[k] ??= { min: v, max: v, avg: 0, count: 0 })
      m.min = Math.min(m.min, v)
      m.max = Math.max(m.max, v)
      m.avg += v // a sum until the end
      m.count++
    }
  for (const m of Object.values(metrics)) m.avg = m.avg / m.count
  let gaps = 0
  let longestGapMs = 0
  for (let i = 1; i < sorted.length; i++) {
    const gap = sorted[i]!.ts - sorted[i - 1]!.ts
    if (gap > gapMs) gaps++
    longestGapMs = Math.max(longestGapMs, gap)
  }
  return {
    day,
    deviceId,
    tenant,
    readings: sorted.length,
    metrics,
    gaps,
    longestGapMs,
    alertsRaised: alerts.length,
  }
}

/** A reading's estimated stored size. */
export const storageBytes = (r: ReadingRow): number =>
  Buffer.byteLength(JSON.stringify(r.metrics)) +
  Buffer.byteLength(JSON.stringify(r.meta)) +
  ROW_OVERHEAD_BYTES

/** CSV with a header; values quoted when they need it. */
export function toCsv(header: string[], rows: (string | number | null)[][]): string {
  const cell = (v: string | number | null) => {
    const s = v === null ? '' : String(v)
    return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s
  }
  return [header, ...rows].map((r) => r.map(cell).join(',')).join('\n') + '\n'
}
