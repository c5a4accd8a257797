import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import type { DeviceRow, ReadStore } from '../api/store'
import { dailyDeviceRow, storageBytes, toCsv, type DailyDeviceRow, type MonthlyUsageRow } from './compute'

const DAY = 86_400_000

/** Every device of the store (paged). */
async function allDevices(store: ReadStore): Promise<DeviceRow[]> {
  const out: DeviceRow[] = []
  for (let after: string | undefined; ;) {
    const page = await store.devices({ after, limit: 1000 })
    out.push(...page)
    if (page.length < 1000) return out
    after = page[page.length - 1]!.deviceId
  }
}

/** Where a report went. */
export interface Written {
  json: string
  csv: string
  rows: number
}

function write(outDir: string, name: string, json: unknown, csv: string, rows: number): Written {
  mkdirSync(outDir, { recursive: true })
  const base = path.join(outDir, name)
  writeFileSync(`${base}.json`, `${JSON.stringify(json, null, 2)}\n`)
  writeFileSync(`${base}.csv`, csv)
  return { json: `${base}.json`, csv: `${base}.csv`, rows }
}

/** The daily per-device report of one UTC day (`YYYY-MM-DD`). */
export async function dailyReport(
  store: ReadStore,
  day: string,
  o: { outDir: string; gapMs: number; maxReadingsPerDevice: number },
): Promise<Written & { report: DailyDeviceRow[] }> {
  const from = Date.parse(`${day}T00:00:00Z`)
  const to = from + DAY
  const report: DailyDeviceRow[] = []
  for (const d of await allDevices(store)) {
    const readings = await store.readings({ deviceId: d.deviceId, from, to, limit: o.maxReadingsPerDevice })
    const alerts = (await store.alerts({ deviceId: d.deviceId, limit: 10_000 })).filter(
      (a) => a.raisedAt >= from && a.raisedAt < to,
    )
    if (readings.length === 0 && alerts.length === 0) continue
    report.push(
      dailyDeviceRow(day, d.deviceId, d.tenant ?? readings[0]?.tenant ?? null, readings, alerts, o.gapMs),
    )
  }
  const csvRows = report.flatMap((r) =>
    Object.keys(r.metrics).length === 0
      ? [
          [
            r.day,
            r.deviceId,
            r.tenant,
            r.readings,
            null,
            null,
            null,
            null,
            r.gaps,
            r.longestGapMs,
            r.alertsRaised,
          ],
        ]
      : Object.entries(r.metrics).map(([m, s]) => [
          r.day,
          r.deviceId,
          r.tenant,
          r.readings,
          m,
          s.min,
          s.max,
          +s.avg.toFixed(6),
          r.gaps,
          r.longestGapMs,
          r.alertsRaised,
        ]),
  )
  const csv = toCsv(
    [
      'day',
      'device',
      'tenant',
      'readings',
      'metric',
      'min',
      'max',
      'avg',
      'gaps',
      'longest_gap_ms',
      'alerts_raised',
    ],
    csvRows,
  )
  return { ...write(o.outDir, `daily-${day}`, report, csv, report.length), report }
}

/** The monthly usage summary per tenant of one UTC month (`YYYY-MM`). */
export async function monthlyUsage(
  store: ReadStore,
  month: string,
  o: { outDir: string; maxReadingsPerDevice: number },
): Promise<Written & { report: MonthlyUsageRow[] }> {
  const from = Date.parse(`${month}-01T00:00:00Z`)
  const next = new Date(from)
  next.setUTCMonth(next.getUTCMonth() + 1)
  const to = next.getTime()
  const byTenant = new Map<string, MonthlyUsageRow>()
  for (const d of await allDevices(store)) {
    // Day by day, so that one request never exceeds a store's range limit.
    let readings = 0
    let bytes = 0
    let tenant = d.tenant
    for (let t = from; t < to; t += DAY) {
      const rows = await store.readings({
        deviceId: d.deviceId,
        from: t,
        to: Math.min(to, t + DAY),
        limit: o.maxReadingsPerDevice,
      })
      readings += rows.length
      for (const r of rows) bytes += storageBytes(r)
      tenant ??= rows[0]?.tenant ?? null
    }
    if (readings === 0) continue
    const key = tenant ?? '(none)'
    const row = byTenant.get(key) ?? { month, tenant: key, readings: 0, devices: 0, storageBytes: 0 }
    row.readings += readings
    row.devices += 1
    row.storageBytes += bytes
    byTenant.set(key, row)
  }
  const report = [...byTenant.values()].sort((a, b) => (a.tenant < b.tenant ? -1 : 1))
  const csv = toCsv(
    ['month', 'tenant', 'readings', 'devices', 'storage_bytes'],
    report.map((r) => [r.month, r.tenant, r.readings, r.devices, r.storageBytes]),
  )
  return { ...write(o.outDir, `usage-${month}`, report, csv, report.length), report }
}
