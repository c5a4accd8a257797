import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import path from 'node:path'
import { Pool } from 'pg'
import { sqlReadStore } from '../api/sql-store'
import { postgresExecutor, postgresSink } from '../consumers/sinks/postgres'
import { postgresDialect } from '../consumers/sinks/sql/dialect'
import type { Alert, Telemetry } from '../schemas/types.generated'
import { serverEnv, uniqueName } from '../test/servers'
import { scheduledReports } from './cli'
import { ROW_OVERHEAD_BYTES } from './compute'
import { reportsRoleConfig } from './config'
import { ReportScheduler } from './schedule'
import { tempDir } from '../test/tmp'

const MIN = 60_000
const D14 = Date.UTC(2026, 9, 14)
const D15 = Date.UTC(2026, 9, 15)

/** The seeded month: three devices of two tenants; r-0 goes silent for 40 minutes on the 14th. */
function seed(): { readings: Telemetry[]; alerts: Alert[] } {
  const readings: Telemetry[] = []
  const devices = [
    ['r-0', 'acme'],
    ['r-1', 'acme'],
    ['r-2', 'globex'],
  ] as const
  devices.forEach(([deviceId, tenant], d) => {
    for (const day of [D14, D15])
      for (let i = 0; i < 288; i++) {
        const ts = day + i * 5 * MIN
        if (
          deviceId === 'r-0' &&
          day === D14 &&
          ts >= D14 + 10 * 60 * MIN &&
          ts < D14 + 10 * 60 * MIN + 40 * MIN
        )
          continue
        readings.push({
          deviceId,
          tenant,
          ts,
          receivedAt: ts,
          seq: i,
          metrics: { temperature: 10 + d + (i % 13) / 4, battery: 90 - i / 10, state: i % 2 ? 'on' : 'off' },
          meta: { fw: '1.0' },
          source: 'mqtt',
        })
      }
  })
  const alert = (id: string, deviceId: string, raisedAt: number): Alert => ({
    alertId: id,
    event: 'raised',
    ruleId: 'hot',
    ruleName: 'Too hot',
    deviceId,
    tenant: 'acme',
    severity: 'warning',
    ts: raisedAt,
    raisedAt,
    metric: 'temperature',
    value: 30,
    message: 'hot',
  })
  return {
    readings,
    alerts: [
      alert('a1', 'r-1', D14 + 60 * MIN),
      alert('a2', 'r-1', D14 + 600 * MIN),
      alert('a3', 'r-1', D15 + MIN),
    ],
  }
}

describe('reports > scheduled daily and monthly reports on real PostgreSQL [postgres]', () => {
  const schema = uniqueName('reports')
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_')
    .slice(0, 40)
  const url = serverEnv().FS_POSTGRES_URL
  const { readings, alerts } = seed()
  const posted: { kind: string }[] = []
  const hook = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString()))
    req.on('end', () => {
      posted.push(JSON.parse(body) as { kind: string })
      res.end('ok')
    })
  })
  let pool: Pool

  beforeAll(async () => {
    const sink = postgresSink({ connectionString: url, schema })
    await sink.connect()
    await sink.writeTelemetry(readings)
    await sink.writeAlerts(alerts)
    await sink.close()
    pool = new Pool({ connectionString: url, max: 2, options: `-c search_path=${schema}` })
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r))
  })
  afterAll(async () => {
    hook.close()
    await pool?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
    await pool?.end()
  })

  it('runs on schedule with a controlled clock; the reports equal an independent computation', async () => {
    const outDir = tempDir('fs-reports-')
    const cfg = reportsRoleConfig.parse({
      reports: { outDir, webhook: `http://127.0.0.1:${(hook.address() as { port: number }).port}/` },
    })
    const store = sqlReadStore('postgres', postgresDialect, postgresExecutor(pool))
    const scheduler = new ReportScheduler(scheduledReports(cfg, store), new Date(Date.UTC(2026, 9, 14, 12)))

    // 01:00 on the 15th: the daily report of the 14th, nothing else.
    const first = await scheduler.tick(new Date(Date.UTC(2026, 9, 15, 1, 30)))
    expect(first.map((r) => [r.name, r.at.toISOString()])).toEqual([['daily', '2026-10-15T01:00:00.000Z']])
    const daily = JSON.parse(readFileSync(path.join(outDir, 'daily-2026-10-14.json'), 'utf8')) as {
      deviceId: string
      readings: number
      gaps: number
      longestGapMs: number
      alertsRaised: number
      metrics: Record<string, { min: number; max: number; avg: number; count: number }>
    }[]
    for (const deviceId of ['r-0', 'r-1', 'r-2']) {
      const mine = readings.filter((r) => r.deviceId === deviceId && r.ts >= D14 && r.ts < D15)
      const temps = mine.map((r) => r.metrics.temperature as number)
      const row = daily.find((x) => x.deviceId === deviceId)!
      expect(row.readings).toBe(mine.length)
      expect(row.metrics.temperature!.min).toBe(Math.min(...temps))
      expect(row.metrics.temperature!.max).toBe(Math.max(...temps))
      expect(row.metrics.temperature!.avg).toBeCloseTo(temps.reduce((a, b) => a + b, 0) / temps.length, 9)
      expect(row.metrics.state).toBeUndefined() // not a number
      expect(row.gaps).toBe(deviceId === 'r-0' ? 1 : 0)
      expect(row.longestGapMs).toBe(deviceId === 'r-0' ? 45 * MIN : 5 * MIN)
      expect(row.alertsRaised).toBe(deviceId === 'r-1' ? 2 : 0)
    }
    const csv = readFileSync(path.join(outDir, 'daily-2026-10-14.csv'), 'utf8').trim().split('\n')
    expect(csv[0]).toBe('day,device,tenant,readings,metric,min,max,avg,gaps,longest_gap_ms,alerts_raised')
    expect(csv).toHaveLength(1 + 3 * 2) // three devices × two numeric metrics

    // Then to 03:00 on 1 November: a daily report each day, and October's usage at 02:00.
    const rest = await scheduler.tick(new Date(Date.UTC(2026, 10, 1, 3)))
    expect(rest.filter((r) => r.name === 'daily')).toHaveLength(17)
    expect(rest.filter((r) => r.name === 'monthly').map((r) => r.at.toISOString())).toEqual([
      '2026-11-01T02:00:00.000Z',
    ])
    const usage = JSON.parse(readFileSync(path.join(outDir, 'usage-2026-10.json'), 'utf8')) as {
      tenant: string
      readings: number
      devices: number
      storageBytes: number
    }[]
    const want = ['acme', 'globex'].map((tenant) => {
      const mine = readings.filter((r) => r.tenant === tenant)
      return {
        month: '2026-10',
        tenant,
        readings: mine.length,
        devices: new Set(mine.map((r) => r.deviceId)).size,
        storageBytes: mine.reduce(
          (a, r) =>
            a +
            Buffer.byteLength(JSON.stringify(r.metrics)) +
            Buffer.byteLength(JSON.stringify(r.meta)) +
            ROW_OVERHEAD_BYTES,
          0,
        ),
      }
    })
    expect(usage).toEqual(want)
    // Each run was posted to the webhook.
    expect(posted.map((p) => p.kind).sort()).toEqual([...Array(18).fill('daily'), 'monthly'])
    // Nothing runs twice.
    expect(await scheduler.tick(new Date(Date.UTC(2026, 10, 1, 3)))).toEqual([])
  }, 120_000)
})
