import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { AvroCodec } from '../../core/envelope/codec'
import { LocalSchemaRegistry } from '../../core/envelope/registry'
import { createTelemetryCodec, type Telemetry } from '../../core/envelope/telemetry'
import type { KafkaEventLog } from '../../core/kafka/kafkajs-log'
import type { InRecord } from '../../core/kafka/log'
import { parseRules } from '../../rules/loader'
import { RuleTable } from '../../rules/table'
import type { Alert, Device, RuleDefinition } from '../../schemas/types.generated'
import { collect, testKafkaLog, testLogger } from '../../test/kafka'
import { serverEnv, uniqueName } from '../../test/servers'
import { runJob } from '../runtime/runner'
import { rulesJob } from './rules'
import { backtest } from './rules-backtest'

const MIN = 60_000
const DEVICES = 40

describe('stream-jobs > rules job on Kafka [kafka]', () => {
  let log: KafkaEventLog
  let telemetry: AvroCodec<Telemetry>
  let deviceCodec: AvroCodec<Device>
  let alertCodec: AvroCodec<Alert>
  let ruleCodec: AvroCodec<RuleDefinition>

  beforeAll(async () => {
    log = testKafkaLog()
    const registry = new LocalSchemaRegistry()
    telemetry = await createTelemetryCodec(registry)
    deviceCodec = await AvroCodec.bundled<Device>(registry, 'device.avsc')
    alertCodec = await AvroCodec.bundled<Alert>(registry, 'alert.avsc')
    ruleCodec = await AvroCodec.bundled<RuleDefinition>(registry, 'rule-definition.avsc')
  })
  afterAll(async () => {
    await log?.close()
  })

  const T0 = Math.floor((Date.now() - 2 * 3_600_000) / MIN) * MIN
  /** Each device: temperature every 10 s for 30 minutes, with hot spells that differ per device. */
  function dataset(): Telemetry[] {
    const out: Telemetry[] = []
    for (let i = 0; i < 180; i++)
      for (let d = 0; d < DEVICES; d++) {
        const hot = (i + d * 7) % 60 < 12 // 2 minutes in every 10 are hot, shifted per device
        out.push({
          deviceId: `r-${d}`,
          tenant: null,
          ts: T0 + i * 10_000,
          receivedAt: 0,
          seq: i,
          metrics: { temperature: hot ? 35 + (i % 3) : 20 + (d % 5), battery: 100 - i / 3 },
          meta: {},
          source: 'mqtt',
        })
      }
    return out
  }
  const RULES = [
    {
      id: 'hot',
      kind: 'threshold',
      metric: 'temperature',
      above: 30,
      clear: 25,
      for: { readings: 2 },
      severity: 'critical',
    },
    { id: 'hot-north', kind: 'threshold', metric: 'temperature', above: 30, scope: { site: 'north' } },
    { id: 'battery', kind: 'battery', below: 60 },
  ]

  async function setup(name: string) {
    const id = uniqueName(name)
    const topics = {
      enriched: `${id}.enriched`,
      devices: `${id}.devices`,
      rules: `${id}.rules`,
      alerts: `${id}.alerts`,
      dlq: `${id}.dlq`,
    }
    const admin = await log.admin()
    await admin.ensureTopics([
      { name: topics.enriched, partitions: 4, replicationFactor: 1 },
      { name: topics.devices, partitions: 4, replicationFactor: 1, compacted: true },
      { name: topics.rules, partitions: 2, replicationFactor: 1, compacted: true },
    ])
    await admin.close()
    const producer = await log.producer()
    const publish = (rules: object[]) =>
      producer.send(
        rules.map((r) => ({
          topic: topics.rules,
          key: (r as { id: string }).id,
          value: ruleCodec.encode({
            ruleId: (r as { id: string }).id,
            definition: JSON.stringify(r),
            publishedAt: Date.now(),
            source: 'test',
          }),
        })),
      )
    const sendDevices = () =>
      producer.send(
        Array.from({ length: DEVICES }, (_, d) => ({
          topic: topics.devices,
          key: `r-${d}`,
          value: deviceCodec.encode({
            deviceId: `r-${d}`,
            tenant: 'acme',
            site: d % 2 ? 'north' : 'south',
            model: null,
            tags: {},
            limits: {},
          }),
        })),
      )
    const sendReadings = async (rs: Telemetry[]) => {
      for (let i = 0; i < rs.length; i += 1000)
        await producer.send(
          rs
            .slice(i, i + 1000)
            .map((r) => ({ topic: topics.enriched, key: r.deviceId, value: telemetry.encode(r) })),
        )
    }
    /** Starts the job in this process, with its own rule table following the rules topic. */
    const start = async (appId: string, alertsTopic = topics.alerts) => {
      const instanceId = 'a'
      const table = new RuleTable(ruleCodec, testLogger('rules-table'))
      const follower = await table.follow(log, topics.rules, `${appId}-table-${instanceId}-${Date.now()}`)
      const job = await runJob(
        rulesJob({
          enrichedTopic: topics.enriched,
          devicesTopic: topics.devices,
          alertsTopic,
          deadletterTopic: topics.dlq,
          table,
          time: { outOfOrdernessMs: 5_000, idleTimeoutMs: 3_600_000, maxFutureMs: 300_000 },
          telemetry,
          device: deviceCodec,
          alert: alertCodec,
        }),
        log,
        {
          groupId: `${appId}-rules`,
          instanceId,
          changelogTopic: `${appId}-rules-changelog`,
          tickMs: 500,
          logger: testLogger('rules-job'),
        },
      )
      return { close: async () => (await job.close(), await follower.close()) }
    }
    const alerts = async (done: (as: Alert[]) => boolean, topic = topics.alerts) => {
      const recs = await collect(
        log,
        { groupId: uniqueName('alerts-read'), topics: [topic] },
        (rs) => done(decode(rs)),
        90_000,
      )
      return decode(recs)
    }
    const close = () => producer.close()
    return { id, topics, publish, sendDevices, sendReadings, start, alerts, close }
  }
  const decode = (rs: InRecord[]) => rs.map((r) => alertCodec.type.fromBuffer(r.value!.subarray(5)) as Alert)

  /** What the rules must raise, computed directly: hot spells of ≥ 2 readings, north devices, battery. */
  function expectedRaised(data: Telemetry[]): number {
    let n = 0
    for (let d = 0; d < DEVICES; d++) {
      const temps = data.filter((r) => r.deviceId === `r-${d}`).map((r) => r.metrics.temperature as number)
      let run = 0
      let open = false
      let openNorth = false
      for (const t of temps) {
        if (t > 30) {
          run++
          if (!open && run >= 2) {
            open = true
            n++
          }
          if (d % 2 && !openNorth) {
            openNorth = true
            n++
          }
        } else if (t <= 25) {
          run = 0
          open = false
          openNorth = false
        } else {
          run = 0
          openNorth = false
        }
      }
      n++ // battery falls below 60 once per device
    }
    return n
  }

  it('raises exactly the expected alerts; a replay of the same input, and a backtest, give the same alert ids, none twice', async () => {
    const t = await setup('rules-replay')
    try {
      await t.publish(RULES)
      await t.sendDevices()
      const data = dataset()
      const want = expectedRaised(data)
      // Let the registry reach the job first: the north scope needs it.
      const a = await t.start(`${t.id}-a`)
      await new Promise((r) => setTimeout(r, 1_500))
      await t.sendReadings(data)
      const first = await t.alerts((as) => as.filter((x) => x.event === 'raised').length >= want)
      await a.close()
      const raised = first.filter((x) => x.event === 'raised')
      expect(raised).toHaveLength(want)
      expect(new Set(raised.map((x) => x.alertId)).size).toBe(want) // no alert raised twice
      for (const c of first.filter((x) => x.event === 'cleared'))
        expect(raised.some((r) => r.alertId === c.alertId)).toBe(true)

      // The same input processed again from scratch (a new application id, its own alerts topic),
      // once all of the first run's alerts are read.
      const firstAll = await t.alerts((as) => as.length >= first.length, t.topics.alerts)
      const replayTopic = `${t.topics.alerts}.replay`
      const b = await t.start(`${t.id}-b`, replayTopic)
      const second = await t.alerts((as) => as.length >= firstAll.length, replayTopic)
      await b.close()
      const key = (x: Alert) => `${x.alertId}/${x.event}/${x.ts}`
      expect(second.map(key).sort()).toEqual(firstAll.map(key).sort())

      // The backtest (the same engine, driven over the recorded topics) says the same.
      const devices: InRecord[] = []
      const readings: InRecord[] = []
      await log.readTopic(t.topics.devices, (r) => devices.push(r))
      await log.readTopic(t.topics.enriched, (r) => readings.push(r))
      const offline = await backtest(devices, readings, {
        rules: parseRules('test', RULES),
        telemetry,
        device: deviceCodec,
        alert: alertCodec,
      })
      expect(offline.map(key).sort()).toEqual(firstAll.map(key).sort())
    } finally {
      await t.close()
    }
  })

  it('applies a rule changed on the rules topic without a restart', async () => {
    const t = await setup('rules-live')
    try {
      await t.publish([{ id: 'hot', kind: 'threshold', metric: 'temperature', above: 30 }])
      const job = await t.start(`${t.id}-a`)
      try {
        const reading = (ts: number, temperature: number): Telemetry => ({
          deviceId: 'r-1',
          tenant: null,
          ts,
          receivedAt: 0,
          seq: null,
          metrics: { temperature },
          meta: {},
          source: 'mqtt',
        })
        await t.sendReadings([reading(T0, 40)])
        expect((await t.alerts((as) => as.length >= 1)).map((x) => x.event)).toEqual(['raised'])
        // Raise the threshold above the current value: the next reading clears the alert.
        await t.publish([{ id: 'hot', kind: 'threshold', metric: 'temperature', above: 50 }])
        let events: string[] = []
        for (let i = 1; i <= 40 && !events.includes('cleared'); i++) {
          await t.sendReadings([reading(T0 + i * 1000, 40)])
          events = (await t.alerts((as) => as.length >= 2, t.topics.alerts).catch(() => [])).map(
            (x) => x.event,
          )
          if (!events.includes('cleared')) await new Promise((r) => setTimeout(r, 250))
        }
        expect(events).toEqual(['raised', 'cleared'])
      } finally {
        await job.close()
      }
    } finally {
      await t.close()
    }
  })

  /** `fleetstream job rules` in a process of its own (session timeout 8 s), once it runs. */
  function jobProcess(topics: Record<string, string>, appId: string, instanceId: string) {
    const env = {
      PATH: process.env.PATH!,
      FLEETSTREAM_KAFKA__BROKERS: serverEnv().FS_KAFKA_BROKERS,
      FLEETSTREAM_TOPICS__ENRICHED: topics.enriched,
      FLEETSTREAM_TOPICS__DEVICES: topics.devices,
      FLEETSTREAM_TOPICS__RULES: topics.rules,
      FLEETSTREAM_TOPICS__ALERTS: topics.alerts,
      FLEETSTREAM_TOPICS__DEADLETTER: topics.dlq,
      FLEETSTREAM_JOBS__APPLICATION_ID: appId,
      FLEETSTREAM_JOBS__INSTANCE_ID: instanceId,
      FLEETSTREAM_JOBS__IDLE_TIMEOUT_MS: '3600000',
      FLEETSTREAM_JOBS__METRICS__PORT: '0',
      FLEETSTREAM_LOG__LEVEL: 'warn',
      FLEETSTREAM_KAFKA__SESSION_TIMEOUT_MS: '8000',
    }
    return new Promise<ChildProcess>((resolve, reject) => {
      const p = spawn(
        process.execPath,
        [path.resolve(__dirname, '../../bin/fleetstream.js'), 'job', 'rules'],
        {
          env,
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      )
      p.stdout!.on('data', (c: Buffer) => c.toString().includes('"event":"running"') && resolve(p))
      p.once('exit', (code) => reject(new Error(`rules job exited with ${code}`)))
    })
  }
  const stop = (p: ChildProcess, signal: NodeJS.Signals) =>
    new Promise<void>((r) => (p.once('exit', () => r()), p.kill(signal)))

  /** Every raised alert of `want` once, and no event twice. */
  function exactlyOnce(all: Alert[], want: number): void {
    const raised = all.filter((x) => x.event === 'raised')
    expect(raised).toHaveLength(want)
    expect(new Set(raised.map((x) => x.alertId)).size).toBe(want)
    // Every event exactly once (read_committed: what a process did not commit is invisible).
    const keys = all.map((x) => `${x.alertId}/${x.event}/${x.ts}`)
    expect(new Set(keys).size).toBe(keys.length)
  }

  it('gives the same alerts, none twice, after the job process is killed with SIGKILL twice', async () => {
    const t = await setup('rules-kill')
    try {
      await t.publish(RULES)
      await t.sendDevices()
      const data = dataset()
      const want = expectedRaised(data)
      const startProcess = () => jobProcess(t.topics, `${t.id}-k`, 'k0')
      const kill9 = (p: ChildProcess) => stop(p, 'SIGKILL')
      const third = Math.floor(data.length / 3)
      let p = await startProcess()
      await new Promise((r) => setTimeout(r, 1_500))
      await t.sendReadings(data.slice(0, third))
      await t.alerts((as) => as.length >= 10)
      await kill9(p)
      p = await startProcess()
      await t.sendReadings(data.slice(third, 2 * third))
      await t.alerts((as) => as.filter((x) => x.event === 'raised').length >= want / 2)
      await kill9(p)
      p = await startProcess()
      try {
        await t.sendReadings(data.slice(2 * third))
        const all = await t.alerts((as) => as.filter((x) => x.event === 'raised').length >= want)
        exactlyOnce(all, want)
      } finally {
        await stop(p, 'SIGTERM')
      }
    } finally {
      await t.close()
    }
  })

  it('gives the same alerts, none twice, when a paused instance wakes after another took over its partitions', async () => {
    // The paused instance (SIGSTOP past its session timeout) is a zombie: the group has moved on
    // to a generation without it, and its transactional id differs from the new owner's, so
    // only the group generation its transactions carry (KIP-447) can keep it from committing.
    const t = await setup('rules-zombie')
    const procs: ChildProcess[] = []
    try {
      await t.publish(RULES)
      await t.sendDevices()
      const data = dataset()
      const want = expectedRaised(data)
      const half = data.length / 2
      const a = await jobProcess(t.topics, `${t.id}-z`, 'z0')
      procs.push(a)
      await new Promise((r) => setTimeout(r, 1_500))
      // Paused while readings stream in, so it may hold a batch it has not committed.
      for (let i = 0; i < half; i += 200) {
        await t.sendReadings(data.slice(i, Math.min(i + 200, half)))
        if (i === 1_200) a.kill('SIGSTOP')
        await new Promise((r) => setTimeout(r, 50))
      }
      const b = await jobProcess(t.topics, `${t.id}-z`, 'z1')
      procs.push(b)
      // The group drops the paused member after its session timeout (8 s); then b owns everything.
      await t.alerts((as) => as.filter((x) => x.event === 'raised').length >= want / 4)
      await new Promise((r) => setTimeout(r, 10_000))
      a.kill('SIGCONT')
      await t.sendReadings(data.slice(half))
      await t.alerts((as) => as.filter((x) => x.event === 'raised').length >= want)
      // Anything the zombie could still commit would show by now.
      await new Promise((r) => setTimeout(r, 5_000))
      exactlyOnce(await t.alerts((as) => as.filter((x) => x.event === 'raised').length >= want), want)
    } finally {
      for (const p of procs) {
        p.kill('SIGCONT')
        await stop(p, 'SIGTERM')
      }
      await t.close()
    }
  })
})
