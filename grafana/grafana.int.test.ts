import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import { Pool } from 'pg'
import { postgresSink } from '../consumers/sinks/postgres'
import type { Alert, Rollup, Telemetry } from '../schemas/types.generated'
import { serverEnv, uniqueName } from '../test/servers'

interface Target {
  rawSql?: string
  expr?: string
  datasource: { uid: string }
}
interface Dashboard {
  title: string
  time: { from: string }
  refresh: string
  panels: { title: string; targets: Target[] }[]
  templating: { list: { name: string; query: string }[] }
}

const DIR = path.join(__dirname, 'dashboards')
const dashboards = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .map((f) => [f, JSON.parse(readFileSync(path.join(DIR, f), 'utf8')) as Dashboard] as const)

const HOUR = 3_600_000
const NOW = Date.now()

/**
 * Grafana's SQL macros, expanded as its PostgreSQL data source does for the dashboard's time
 * range (the `$__interval` of a 1,000-pixel panel), and multi-value variables as quoted lists.
 */
function expand(sql: string, from: number, to: number, vars: Record<string, string[]>): string {
  const seconds = (s: string) => {
    const m = /^'?(\d+)([smhd])'?$/.exec(s.trim())!
    return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 's']!
  }
  const interval = `${Math.max(1, Math.round((to - from) / 1000 / 1000))}s`
  return sql
    .replaceAll('$__interval', `'${interval}'`)
    .replace(
      /\$__timeFilter\(([^)]+)\)/g,
      (_m, c: string) => `${c} BETWEEN '${new Date(from).toISOString()}' AND '${new Date(to).toISOString()}'`,
    )
    .replace(
      /\$__timeGroupAlias\(([^,]+),\s*([^)]+)\)/g,
      (_m, c: string, i: string) => `floor(extract(epoch from ${c})/${seconds(i)})*${seconds(i)} AS "time"`,
    )
    .replace(/\$(\w+)/g, (m, name: string) =>
      vars[name] ? vars[name].map((v) => `'${v.replaceAll("'", "''")}'`).join(',') : m,
    )
}

const rangeOf = (d: Dashboard) => {
  const m = /^now-(\d+)h$/.exec(d.time.from)!
  return { from: NOW - Number(m[1]) * HOUR, to: NOW }
}

describe('grafana > provisioned dashboards', () => {
  it('have the ranges and refresh the design asks for', () => {
    const byUid = Object.fromEntries(dashboards.map(([, d]) => [d.title, d]))
    expect(byUid['Fleet telemetry (DEVICE.METRIC)']).toMatchObject({
      time: { from: 'now-6h' },
      refresh: '30s',
    })
    expect(byUid['Battery levels (48 h)']).toMatchObject({ time: { from: 'now-48h' }, refresh: '30m' })
    expect(Object.keys(byUid).sort()).toEqual([
      'Alerts',
      'Battery levels (48 h)',
      'Fleet telemetry (DEVICE.METRIC)',
      'Pipeline health',
    ])
  })

  it('chart only metrics fleetstream exports (every PromQL metric name is defined in the code)', () => {
    const names = new Set<string>()
    for (const [, d] of dashboards)
      for (const p of d.panels)
        for (const t of p.targets) for (const m of t.expr?.matchAll(/fleetstream_\w+/g) ?? []) names.add(m[0])
    expect(names.size).toBeGreaterThan(5)
    const root = path.resolve(__dirname, '..')
    for (const name of names) {
      const hits = execFileSync(
        'grep',
        ['-rl', '--include=*.ts', `name: '${name}'`, 'bridge', 'stream-jobs', 'consumers', 'api', 'rules'],
        {
          cwd: root,
          encoding: 'utf8',
        },
      )
      expect([name, hits.length > 0]).toEqual([name, true])
    }
  })
})

describe("grafana > every SQL panel and variable runs on real PostgreSQL with the sink's data [postgres]", () => {
  const schema = uniqueName('grafana')
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_')
    .slice(0, 40)
  const url = serverEnv().FS_POSTGRES_URL
  let pool: Pool

  beforeAll(async () => {
    const sink = postgresSink({ connectionString: url, schema })
    await sink.connect()
    const readings: Telemetry[] = []
    for (let d = 0; d < 5; d++)
      for (let i = 0; i < 240; i++) {
        const ts = NOW - 40 * HOUR + i * 10 * 60_000
        readings.push({
          deviceId: `gf-${d}`,
          tenant: 'acme',
          ts,
          receivedAt: ts,
          seq: i,
          metrics: { temperature: 20 + (i % 7), battery: 100 - i * 0.2 - d, door: 'shut' },
          meta: {},
          source: 'mqtt',
        })
      }
    await sink.writeTelemetry(readings)
    const rollups: Rollup[] = [0, 1, 2].map((k) => ({
      deviceId: 'gf-0',
      metric: 'temperature',
      windowStart: NOW - 2 * HOUR + k * 60_000,
      windowEnd: NOW - 2 * HOUR + (k + 1) * 60_000,
      count: 6,
      min: 20,
      max: 26,
      sum: 138,
      avg: 23,
      first: 20,
      last: 26,
      kind: 'final',
    }))
    await sink.writeRollups(rollups)
    const alert: Alert = {
      alertId: 'gf-a1',
      event: 'raised',
      ruleId: 'hot',
      ruleName: 'Too hot',
      deviceId: 'gf-1',
      tenant: 'acme',
      severity: 'warning',
      ts: NOW - HOUR,
      raisedAt: NOW - HOUR,
      metric: 'temperature',
      value: 41,
      message: 'temperature 41 above 40',
    }
    await sink.writeAlerts([alert])
    await sink.writeDevices([
      {
        deviceId: 'gf-0',
        device: { deviceId: 'gf-0', tenant: 'acme', site: 's', model: 'm', tags: {}, limits: {} },
      },
    ])
    await sink.close()
    pool = new Pool({ connectionString: url, max: 2, options: `-c search_path=${schema}` })
  })
  afterAll(async () => {
    await pool?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
    await pool?.end()
  })

  // Dashboards with SQL panels (the pipeline dashboard is Prometheus only: checked above).
  const sqlDashboards = dashboards.filter(([, d]) => d.panels.some((p) => p.targets.some((t) => t.rawSql)))
  it.each(sqlDashboards.map(([f, d]) => [f, d] as const))('%s', async (_f, d) => {
    const { from, to } = rangeOf(d)
    // Variables first: their values feed the panels, as in Grafana ("All" = every value).
    const vars: Record<string, string[]> = {}
    for (const v of d.templating.list) {
      const rows = (await pool.query(expand(v.query, from, to, vars))).rows
      vars[v.name] = rows.map((r) => String(Object.values(r)[0]))
      expect([v.name, vars[v.name]!.length > 0]).toEqual([v.name, true])
    }
    let sqlPanels = 0
    for (const p of d.panels)
      for (const t of p.targets) {
        if (!t.rawSql) continue
        sqlPanels++
        const rows = (await pool.query(expand(t.rawSql, from, to, vars))).rows
        expect([p.title, rows.length > 0]).toEqual([p.title, true])
      }
    expect(sqlPanels).toBeGreaterThan(0)
  })
})

describe('prometheus > scrape configuration and alerting rules', () => {
  const root = path.resolve(__dirname, '..')
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const YAML = require('yaml') as typeof import('yaml')
  const scrape = YAML.parse(readFileSync(path.join(root, 'prometheus/prometheus.yml'), 'utf8')) as {
    scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[]
  }
  const rules = YAML.parse(readFileSync(path.join(root, 'prometheus/alerts.yml'), 'utf8')) as {
    groups: { rules: { alert: string; expr: string; for: string }[] }[]
  }

  it('scrapes every role on its metrics port', () => {
    const targets = scrape.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets))
    for (const port of [':8080', ':9464', ':9465', ':9466', ':8090'])
      expect([port, targets.some((t) => t.endsWith(port))]).toEqual([port, true])
  })

  it('alerts on lag, dead letters, pushback and sink errors, using only metrics fleetstream exports', () => {
    const all = rules.groups.flatMap((g) => g.rules)
    expect(all.map((r) => r.alert).sort()).toEqual([
      'FleetstreamBridgePushback',
      'FleetstreamConsumerLagGrowing',
      'FleetstreamDeadLettersRising',
      'FleetstreamSinkErrors',
    ])
    for (const r of all)
      for (const m of r.expr.matchAll(/fleetstream_\w+/g)) {
        const hits = execFileSync(
          'grep',
          ['-rl', '--include=*.ts', `name: '${m[0]}'`, 'bridge', 'stream-jobs', 'consumers'],
          {
            cwd: root,
            encoding: 'utf8',
          },
        )
        expect([m[0], hits.length > 0]).toEqual([m[0], true])
      }
  })
})
