/**
 * Rules benchmark: `fleetstream job rules` with 100 rules (thresholds, ranges, battery, rate of
 * change, anomaly, CEL conditions; some scoped by site) over 10,000 devices on the real Kafka.
 *
 *   npm run bench:rules     (BENCH_READINGS=200000, BENCH_DEVICES=10000, BENCH_RATE=10000,
 *                            BENCH_LATENCY_S=20, BENCH_WARMUP_S=10, BENCH_TICK_MS=10,
 *                            BENCH_INSTANCES=cores, BENCH_RUNS=3)
 *
 * 1. Throughput: the job works through BENCH_READINGS enriched readings already in Kafka;
 *    rule evaluations (from the job's own /metrics) per CPU-second of the job process, from the
 *    moment its consumer group has its partitions to its last committed offset.
 * 2. Latency: readings produced at BENCH_RATE per second; some devices cross a threshold every
 *    second; from the moment the crossing reading is handed to the producer to the alert's
 *    arrival at a read_committed consumer of iot.alerts, p50/p99 (after BENCH_WARMUP_S).
 *
 * One JSON object per line on stdout; bench/results/rules.json gets `p99_ms` and `evals_per_cpu_s`.
 */
import { execFileSync, spawn } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { AvroCodec } from '../core/envelope/codec'
import { LocalSchemaRegistry } from '../core/envelope/registry'
import { createTelemetryCodec, type Telemetry } from '../core/envelope/telemetry'
import type { OutRecord } from '../core/kafka/log'
import type { Alert, Device, RuleDefinition } from '../schemas/types.generated'
import { testKafkaLog } from '../test/kafka'
import { serverEnv } from '../test/servers'
import { benchKafka, committedSum, createBenchTopics, groupStable } from './lib/kafka'
import { useCompiledBuild } from './lib/build'
import { summarizeProfile } from './lib/profile'
import { cpuOfPid, median, pct, reapOnExit, serverPid } from './lib/proc'

const ROOT = path.resolve(__dirname, '..')
const N = Number(process.env.BENCH_READINGS ?? 200_000)
const D = Number(process.env.BENCH_DEVICES ?? 10_000)
const RATE = Number(process.env.BENCH_RATE ?? 10_000)
const LATENCY_S = Number(process.env.BENCH_LATENCY_S ?? 20)
const WARMUP_S = Number(process.env.BENCH_WARMUP_S ?? 10)
const TICK_MS = Number(process.env.BENCH_TICK_MS ?? 10)
/** Instances of the job (one consumer group) in the latency run at BENCH_RATE: one per core. */
const INSTANCES = Number(process.env.BENCH_INSTANCES ?? os.cpus().length)
/** Each measure runs this many times; results are the medians (runs vary a lot on 2 shared cores). */
const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const PARTS = 4
const RUN = `br${Date.now().toString(36)}`
const out = (o: object) => process.stdout.write(`${JSON.stringify({ bench: 'rules', ...o })}\n`)
const env = serverEnv()
const kafka = benchKafka('bench-rules')

/** 100 rules of every kind; a quarter scoped to one site (half the devices). */
function hundredRules(): object[] {
  const rules: object[] = []
  for (let i = 0; i < 100; i++) {
    const scope = i % 4 === 0 ? { site: 'north' } : undefined
    const base = { id: `r${i}`, severity: 'warning', ...(scope ? { scope } : {}) }
    const metric = `m${i % 5}`
    switch (i % 6) {
      case 0:
        rules.push({ ...base, kind: 'threshold', metric, above: 95 + (i % 4), clear: 90 })
        break
      case 1:
        rules.push({ ...base, kind: 'range', metric, min: 1, max: 99, for: { readings: 2 } })
        break
      case 2:
        rules.push({ ...base, kind: 'battery', below: 5 + (i % 3) })
        break
      case 3:
        rules.push({ ...base, kind: 'rate', metric, risePerMinute: 500 })
        break
      case 4:
        rules.push({ ...base, kind: 'anomaly', metric, window: 20, threshold: 6, minSamples: 10 })
        break
      default:
        rules.push({ ...base, kind: 'condition', when: `metrics.${metric} > 98.0 && metrics.battery < 50.0` })
    }
  }
  return rules
}

const topics = (names: { name: string; compacted?: boolean }[]) => createBenchTopics(kafka, PARTS, names)

const committed = (groupId: string, topic: string) => committedSum(kafka, groupId, topic)

async function metricValue(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  return text
    .split('\n')
    .filter((l) => l.startsWith(name) && !l.startsWith('#'))
    .reduce((a, l) => a + Number(l.split(' ').pop()), 0)
}

const PROFILE_DIR = path.join(ROOT, 'bench/.work/rules-profile')

function startJob(app: string, t: Record<string, string>, nodeArgs: string[] = [], instance = 'bench') {
  const proc = reapOnExit(
    spawn(
      process.execPath,
      // BENCH_NODE_ARGS: extra Node flags for the job processes (GC settings, tracing).
      [
        ...nodeArgs,
        ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
        path.join(ROOT, 'bin/fleetstream.js'),
        'job',
        'rules',
      ],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
        env: {
          ...process.env,
          FLEETSTREAM_KAFKA__BROKERS: env.FS_KAFKA_BROKERS,
          FLEETSTREAM_TOPICS__ENRICHED: t.enriched,
          FLEETSTREAM_TOPICS__DEVICES: t.devices,
          FLEETSTREAM_TOPICS__RULES: t.rules,
          FLEETSTREAM_TOPICS__ALERTS: t.alerts,
          FLEETSTREAM_TOPICS__DEADLETTER: t.dlq,
          FLEETSTREAM_JOBS__APPLICATION_ID: app,
          FLEETSTREAM_JOBS__INSTANCE_ID: instance,
          FLEETSTREAM_JOBS__METRICS__PORT: '0',
          FLEETSTREAM_JOBS__MAX_FUTURE_MS: '3600000',
          FLEETSTREAM_LOG__LEVEL: 'warn',
        },
      },
    ),
  )
  const port = new Promise<number>((resolve, reject) => {
    proc.stdout!.on('data', (c: Buffer) => {
      const line = c
        .toString()
        .split('\n')
        .find((l) => l.includes('"event":"running"'))
      if (line) resolve((JSON.parse(line) as { metricsPort: number }).metricsPort)
    })
    proc.once('exit', (code) => reject(new Error(`rules job exited with ${code}`)))
  })
  return { proc, port }
}

async function main(): Promise<void> {
  const build = useCompiledBuild()
  execFileSync('bash', [path.join(ROOT, 'scripts/servers.sh'), 'start', 'kafka'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const registry = new LocalSchemaRegistry()
  const telemetry = await createTelemetryCodec(registry)
  const deviceCodec = await AvroCodec.bundled<Device>(registry, 'device.avsc')
  const alertCodec = await AvroCodec.bundled<Alert>(registry, 'alert.avsc')
  const ruleCodec = await AvroCodec.bundled<RuleDefinition>(registry, 'rule-definition.avsc')
  const t = {
    enriched: `${RUN}.enriched`,
    devices: `${RUN}.devices`,
    rules: `${RUN}.rules`,
    alerts: `${RUN}.alerts`,
    dlq: `${RUN}.dlq`,
  }
  await topics([
    { name: t.enriched },
    { name: t.devices, compacted: true },
    { name: t.rules, compacted: true },
  ])
  const log = testKafkaLog()
  const producer = await log.producer()
  const rules = hundredRules()
  await producer.send(
    rules.map((r) => {
      const id = (r as { id: string }).id
      return {
        topic: t.rules,
        key: id,
        value: ruleCodec.encode({
          ruleId: id,
          definition: JSON.stringify(r),
          publishedAt: Date.now(),
          source: 'bench',
        }),
      }
    }),
  )
  const devices: OutRecord[] = Array.from({ length: D }, (_, d) => ({
    topic: t.devices,
    key: `dev-${d}`,
    value: deviceCodec.encode({
      deviceId: `dev-${d}`,
      tenant: 'acme',
      site: d % 2 ? 'north' : 'south',
      model: null,
      tags: {},
      limits: {},
    }),
  }))
  for (let i = 0; i < devices.length; i += 5_000) await producer.send(devices.slice(i, i + 5_000))

  // Readings: 5 metrics + battery; values mostly in range, now and then outside (alerts happen).
  const base = Date.now() - 3_600_000
  const reading = (d: number, j: number, ts: number): Telemetry => {
    const v = (k: number) => ((d * 31 + j * 17 + k * 7) % 97) + 1 + ((d + j) % 53 === 0 ? 5 : 0)
    return {
      deviceId: `dev-${d}`,
      tenant: null,
      ts,
      receivedAt: ts,
      seq: j,
      metrics: { m0: v(0), m1: v(1), m2: v(2), m3: v(3), m4: v(4), battery: 100 - (j % 100) },
      meta: {},
      source: 'mqtt',
    }
  }
  let batch: OutRecord[] = []
  for (let i = 0; i < N; i++) {
    const d = i % D
    const j = Math.floor(i / D)
    const e = reading(d, j, base + j * 10_000 + (d % 1000))
    batch.push({ topic: t.enriched, key: e.deviceId, value: telemetry.encode(e) })
    if (batch.length === 10_000) {
      await producer.send(batch)
      batch = []
    }
  }
  if (batch.length) await producer.send(batch)
  out({ phase: 'input', readings: N, devices: D, rules: rules.length })

  /** A threshold crossing per device every few seconds at `rate` readings/s: produce ack → alert visible. */
  async function latencyAt(rate: number, tag: string, instances: number) {
    const lt = { ...t, enriched: `${RUN}.${tag}`, alerts: `${RUN}.alerts-${tag}` }
    await topics([{ name: lt.enriched }])
    const lapp = `${RUN}-${tag}`
    // BENCH_PROFILE=1: a CPU profile of the first instance in bench/.work/rules-profile-<tag>.
    const prof = (i: number) =>
      process.env.BENCH_PROFILE === '1' && i === 0
        ? ['--cpu-prof', `--cpu-prof-dir=${path.join(ROOT, `bench/.work/rules-profile-${tag}`)}`]
        : []
    const ljobs = Array.from({ length: instances }, (_, i) => startJob(lapp, lt, prof(i), `bench-${i}`))
    const lports = await Promise.all(ljobs.map((j) => j.port))
    const sentAt = new Map<string, number>()
    const samples: number[] = []
    const consumer = kafka.consumer({ groupId: `${lapp}-reader`, readUncommitted: false })
    await consumer.connect()
    await new Promise((r) => setTimeout(r, 2_000)) // the job creates its alerts topic
    await consumer.subscribe({ topics: [lt.alerts], fromBeginning: true })
    await consumer.run({
      eachMessage: async ({ message }) => {
        const now = Date.now()
        const a = alertCodec.type.fromBuffer(message.value!.subarray(5)) as Alert
        const at = sentAt.get(`${a.deviceId}/${a.ts}`)
        if (at !== undefined && a.event !== 'updated') samples.push(now - at)
      },
    })
    // Sent every TICK_MS (a fleet's readings arrive spread over the second, not in bursts).
    const perTick = Math.max(1, Math.round((rate * TICK_MS) / 1000))
    const t0 = Date.now()
    const cpu0 = {
      bench: cpuOfPid(process.pid),
      jobs: ljobs.map((j) => cpuOfPid(j.proc.pid!)),
      broker: cpuOfPid(serverPid('kafka')),
    }
    // The first WARMUP_S seconds are sent but not measured: the instances join their group
    // (a rebalance when there are several) and the job's code gets compiled.
    for (let tick = 0; Date.now() - t0 < (WARMUP_S + LATENCY_S) * 1000; tick++) {
      const measured = Date.now() - t0 >= WARMUP_S * 1000
      const due = t0 + tick * TICK_MS
      await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())))
      const now = Date.now()
      const recs: OutRecord[] = []
      for (let k = 0; k < perTick; k++) {
        const d = (tick * perTick + k) % D
        const j = Math.floor((tick * perTick + k) / D)
        const e = reading(d, j, now)
        // Steady values inside every rule's limits; one pass in 25 a device runs hot on m0
        // (threshold and rate rules fire), the next pass clears it; devices take turns, so
        // 1/25 of the fleet crosses in each pass (no fleet-wide storm).
        e.metrics = { m0: (j + d) % 25 === 1 ? 99 : 50, m1: 50, m2: 50, m3: 50, m4: 50, battery: 80 }
        recs.push({ topic: lt.enriched, key: e.deviceId, value: telemetry.encode(e) })
        if (measured) sentAt.set(`${e.deviceId}/${e.ts}`, now)
      }
      await producer.send(recs)
    }
    await new Promise((r) => setTimeout(r, 3_000))
    await consumer.disconnect()
    // The jobs' own view: how long a batch (a step group) took to process and commit.
    const batches: Record<string, number> = {}
    for (const port of lports)
      for (const l of (await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).split('\n'))
        if (l.startsWith('fleetstream_job_batch_seconds_bucket')) {
          const le = /le="([^"]+)"/.exec(l)![1]!
          batches[le] = (batches[le] ?? 0) + Number(l.split(' ').pop())
        }
    // CPU-seconds by process over the run (warm-up included): who the 2 cores went to.
    const cpuS = {
      wallS: (Date.now() - t0) / 1000,
      jobs: ljobs.map((j, i) => +(cpuOfPid(j.proc.pid!) - cpu0.jobs[i]!).toFixed(2)),
      broker: +(cpuOfPid(serverPid('kafka')) - cpu0.broker).toFixed(2),
      loadGenerator: +(cpuOfPid(process.pid) - cpu0.bench).toFixed(2),
    }
    out({ phase: 'latency-batches', tag, cumulativeByLe: batches })
    for (const j of ljobs) j.proc.kill('SIGTERM')
    await Promise.all(ljobs.map((j) => new Promise((r) => j.proc.once('exit', r))))
    const latency = {
      instances,
      cpuS,
      samples: samples.length,
      p50_ms: pct(samples, 50),
      p99_ms: pct(samples, 99),
      readingsPerS: rate,
    }
    out({ phase: 'latency', ...latency })
    return latency
  }

  // 1. Throughput (BENCH_ONLY=latency skips it, and then writes no result file).
  const only = process.env.BENCH_ONLY
  async function throughputRun(run = 0) {
    const app = `${RUN}-t${run}`
    const profile = process.env.BENCH_PROFILE === '1'
    if (profile) rmSync(PROFILE_DIR, { recursive: true, force: true })
    const job = startJob(app, t, profile ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : [])
    const port = await job.port
    // From the moment the job's group has its partitions (every batch counts) to the last offset.
    await groupStable(kafka, `${app}-rules`)
    const broker = serverPid('kafka')
    // Readings the job may already have processed before this point are left out of the count,
    // as their CPU and evaluations are (the first run once counted all readings against part
    // of the CPU). They are counted by evaluations, which the job counts as it evaluates:
    // records in are counted at commit, so a transaction under way at this point made the
    // readings counted here too many (2 of 3 runs once).
    const start = {
      cpu: cpuOfPid(job.proc.pid!),
      evals: await metricValue(port, 'fleetstream_rules_evaluations_total'),
      broker: cpuOfPid(broker),
    }
    while ((await committed(`${app}-rules`, t.enriched)) < N) await new Promise((r) => setTimeout(r, 100))
    const cpu = cpuOfPid(job.proc.pid!) - start.cpu
    const brokerCpu = cpuOfPid(broker) - start.broker
    const evalsAll = await metricValue(port, 'fleetstream_rules_evaluations_total')
    const evals = evalsAll - start.evals
    const readings = Math.round((N * evals) / evalsAll)
    const raised = await metricValue(port, 'fleetstream_rules_alert_events_total{')
    job.proc.kill('SIGTERM')
    await new Promise((r) => job.proc.once('exit', r))
    const throughput = {
      readings,
      evaluations: evals,
      jobCpuS: +cpu.toFixed(2),
      brokerCpuS: +brokerCpu.toFixed(2),
      evalsPerCpuS: Math.round(evals / cpu),
      readingsPerCpuS: Math.round(readings / cpu),
      alertEvents: raised,
    }
    out({ phase: 'throughput', ...throughput })
    return throughput
  }
  if (only === 'latency') {
    await latencyAt(RATE, 'l1', INSTANCES)
    await producer.close()
    await log.close()
    return
  }
  const throughputRuns = []
  for (let i = 0; i < RUNS; i++) throughputRuns.push(await throughputRun(i))
  const throughput = {
    ...throughputRuns[0]!,
    jobCpuS: median(throughputRuns.map((t) => t.jobCpuS)),
    brokerCpuS: median(throughputRuns.map((t) => t.brokerCpuS)),
    evalsPerCpuS: median(throughputRuns.map((t) => t.evalsPerCpuS)),
    readingsPerCpuS: median(throughputRuns.map((t) => t.readingsPerCpuS)),
    runs: throughputRuns,
  }
  const profileTop = process.env.BENCH_PROFILE === '1' ? summarizeProfile(PROFILE_DIR) : undefined
  if (profileTop) process.stderr.write(`${JSON.stringify(profileTop, null, 1)}\n`)

  // 2. Latency at the issue's rate, and at a fifth of it (the job not saturated), same fleet;
  // each RUNS times, medians of p50 and p99.
  const repeated = async (rate: number, tag: string, instances: number) => {
    const runs = []
    for (let i = 0; i < RUNS; i++) runs.push(await latencyAt(rate, `${tag}r${i}`, instances))
    return {
      instances,
      readingsPerS: rate,
      p50_ms: median(runs.map((r) => r.p50_ms!)),
      p99_ms: median(runs.map((r) => r.p99_ms!)),
      runs,
    }
  }
  const latency = await repeated(RATE, 'l1', INSTANCES)
  const latencyOne = INSTANCES > 1 ? await repeated(RATE, 'l1s', 1) : undefined
  const latencyLow = await repeated(Math.round(RATE / 5), 'l2', 1)
  await producer.close()
  await log.close()

  const result = {
    bench: 'rules',
    date: new Date().toISOString(),
    command: 'npm run bench:rules',
    machine: { cpus: os.cpus().length, node: process.version },
    ...build,
    rules: rules.length,
    devices: D,
    p99_ms: latency.p99_ms,
    evals_per_cpu_s: throughput.evalsPerCpuS,
    runs: RUNS,
    throughput,
    latency,
    latencyOneInstance: latencyOne,
    latencyAtOneFifth: latencyLow,
    profileTop,
  }
  mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true })
  writeFileSync(path.join(ROOT, 'bench/results/rules.json'), `${JSON.stringify(result, null, 2)}\n`)
  out({ phase: 'result', p99_ms: result.p99_ms, evals_per_cpu_s: result.evals_per_cpu_s })
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  },
)
