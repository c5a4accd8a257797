/**
 * Stream-jobs benchmark: the 1-minute tumbling rollup (count, min, max, sum, avg, first, last
 * per device and metric, exactly-once) over the same generated input in the real Kafka, run
 * by fleetstream (`fleetstream job rollup`) and, in the same run, by a Kafka Streams
 * application (bench/peers/kafka-streams/RollupApp.java, exactly_once_v2, one stream thread).
 *
 *   npm run bench:jobs     (BENCH_READINGS=1000000, BENCH_DEVICES=10000, BENCH_PARTITIONS=4,
 *                           BENCH_LATENCY_S=30, BENCH_ROUNDS=3, BENCH_PROFILE=1 for the job's
 *                           CPU profile in round 1)
 *
 * Throughput is events per CPU-second, measured from each job's first committed input offset
 * to its last (start-up and JIT of the first batch excluded for both), with the CPU of the job
 * process and of the Kafka broker summed. Then fleetstream's end-to-end latency (a reading
 * that closes a window is produced → the window's rollup is visible to a read_committed
 * consumer) and its memory per 10,000 open windows. One JSON object per line on stdout; the
 * result goes to bench/results/jobs.json with the top-level `ratio` (fleetstream ÷ Kafka Streams).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { AvroCodec } from '../core/envelope/codec'
import { LocalSchemaRegistry } from '../core/envelope/registry'
import { createTelemetryCodec, type Telemetry } from '../core/envelope/telemetry'
import type { OutRecord } from '../core/kafka/log'
import { newWindowState, advance } from '../stream-jobs/operators/window-aggregate'
import type { Rollup } from '../schemas/types.generated'
import { testKafkaLog } from '../test/kafka'
import { serverEnv } from '../test/servers'
import { benchKafka, committedSum, createBenchTopics } from './lib/kafka'
import { useCompiledBuild } from './lib/build'
import { summarizeProfile } from './lib/profile'
import { cpuOfPid, pct, reapOnExit, rssMiB, serverPid } from './lib/proc'

const ROOT = path.resolve(__dirname, '..')
const WORK = path.join(ROOT, 'bench/.work/jobs')
const N = Number(process.env.BENCH_READINGS ?? 1_000_000)
const D = Number(process.env.BENCH_DEVICES ?? 10_000)
const PARTS = Number(process.env.BENCH_PARTITIONS ?? 4)
const LATENCY_S = Number(process.env.BENCH_LATENCY_S ?? 30)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const OOO_MS = 5_000
const RUN = `bj${Date.now().toString(36)}`
const out = (o: object) => process.stdout.write(`${JSON.stringify({ bench: 'jobs', ...o })}\n`)

const env = serverEnv()
const kafka = benchKafka('bench-jobs')

const committed = (groupId: string, topic: string) => committedSum(kafka, groupId, topic)

const createTopics = (names: string[]) =>
  createBenchTopics(
    kafka,
    PARTS,
    names.map((name) => ({ name })),
  )

/** Generates the input: D devices × N/D readings with two metrics, event time in the past,
 * ±2 s of jitter (inside the 5 s out-of-orderness), in time sweeps over the devices. */
async function produceInput(topic: string, telemetry: AvroCodec<Telemetry>): Promise<number> {
  const log = testKafkaLog()
  const producer = await log.producer()
  const per = Math.ceil(N / D)
  const base = Math.floor((Date.now() - 6 * 3_600_000) / 60_000) * 60_000
  const stepMs = 6_000
  let sent = 0
  let batch: OutRecord[] = []
  const t0 = Date.now()
  for (let j = 0; j < per && sent < N; j++) {
    for (let d = 0; d < D && sent < N; d++, sent++) {
      const ts = base + j * stepMs + ((d * 7919 + j * 104_729) % 4001) - 2000
      const e: Telemetry = {
        deviceId: `dev-${d}`,
        tenant: null,
        ts,
        receivedAt: ts,
        seq: j,
        metrics: { temp: 20 + ((d + j) % 50) / 3, hum: 40 + ((d * 3 + j) % 30) },
        meta: {},
        source: 'mqtt',
      }
      batch.push({ topic, key: e.deviceId, value: telemetry.encode(e), timestamp: ts })
      // One send at a time: concurrent sends could reorder a partition's batches.
      if (batch.length === 10_000) {
        await producer.send(batch)
        batch = []
      }
    }
  }
  if (batch.length) await producer.send(batch)
  await producer.close()
  await log.close()
  out({ phase: 'input', readings: sent, devices: D, partitions: PARTS, produceS: (Date.now() - t0) / 1000 })
  return sent
}

interface JobRun {
  engine: string
  events: number
  jobCpuS: number
  brokerCpuS: number
  wallS: number
  eventsPerJobCpuS: number
  eventsPerCpuS: number
  outputOffsets: number
  jobRssMiB: number
}

/** Reads a topic's committed records to the end (no new record for 3 s). */
async function readRollups(topic: string, rollup: AvroCodec<Rollup>): Promise<Map<string, string>> {
  const rows = new Map<string, string>()
  const consumer = kafka.consumer({ groupId: `${topic}-check`, readUncommitted: false })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  let lastAt = Date.now()
  await consumer.run({
    eachMessage: async ({ message }) => {
      lastAt = Date.now()
      const r = rollup.type.fromBuffer(message.value!.subarray(5)) as Rollup
      const n = (x: number) => x.toPrecision(12)
      rows.set(
        `${r.deviceId}|${r.metric}|${r.windowStart}`,
        [r.count, n(r.min), n(r.max), n(r.sum), n(r.first), n(r.last), r.windowEnd].join('|'),
      )
    },
  })
  while (Date.now() - lastAt < 3_000) await new Promise((r) => setTimeout(r, 500))
  await consumer.disconnect()
  return rows
}

/** Both engines' rollups compared on the windows both closed (each stops when its input is done). */
function crossCheck(a: Map<string, string>, b: Map<string, string>) {
  let common = 0
  let mismatches = 0
  for (const [k, v] of a) {
    const w = b.get(k)
    if (w === undefined) continue
    common++
    if (w !== v) mismatches++
  }
  const r = { fleetstreamRollups: a.size, kafkaStreamsRollups: b.size, common, mismatches }
  out({ phase: 'cross-check', ...r })
  return r
}

/** Runs one engine's job process until its group has committed the whole input. */
async function measure(
  engine: string,
  proc: ChildProcess,
  groupId: string,
  input: string,
  output: string,
  total: number,
): Promise<JobRun> {
  const broker = serverPid('kafka')
  let exited = false
  proc.once('exit', () => (exited = true))
  let start: { done: number; job: number; broker: number; t: number } | undefined
  let last = 0
  const deadline = Date.now() + 1_800_000
  for (;;) {
    if (exited) throw new Error(`${engine} exited before finishing`)
    if (Date.now() > deadline) throw new Error(`${engine} did not finish within 30 min`)
    const done = await committed(groupId, input)
    if (!start && done > 0)
      start = { done, job: cpuOfPid(proc.pid!), broker: cpuOfPid(broker), t: Date.now() }
    if (done >= total) break
    if (done !== last) last = done
    await new Promise((r) => setTimeout(r, 200))
  }
  const end = { job: cpuOfPid(proc.pid!), broker: cpuOfPid(broker), t: Date.now() }
  const jobRss = rssMiB(proc.pid!)
  proc.kill('SIGTERM')
  await new Promise((r) => (exited ? r(null) : proc.once('exit', r)))
  const events = total - start!.done
  const jobCpuS = end.job - start!.job
  const brokerCpuS = end.broker - start!.broker
  const admin = kafka.admin()
  await admin.connect()
  const rollups = (await admin.fetchTopicOffsets(output)).reduce((a, p) => a + Number(p.high), 0)
  await admin.disconnect()
  const r: JobRun = {
    engine,
    events,
    jobCpuS: +jobCpuS.toFixed(2),
    brokerCpuS: +brokerCpuS.toFixed(2),
    wallS: +((end.t - start!.t) / 1000).toFixed(2),
    eventsPerJobCpuS: Math.round(events / jobCpuS),
    eventsPerCpuS: Math.round(events / (jobCpuS + brokerCpuS)),
    // End offsets: rollups plus transaction markers (each engine's own commit rate).
    outputOffsets: rollups,
    jobRssMiB: Math.round(jobRss),
  }
  out({ phase: 'throughput', ...r })
  return r
}

const PROFILE_DIR = path.join(WORK, 'profile')

function fleetstreamJob(
  app: string,
  input: string,
  output: string,
  extraEnv: Record<string, string> = {},
  nodeArgs: string[] = [],
) {
  return reapOnExit(
    spawn(process.execPath, [...nodeArgs, path.join(ROOT, 'bin/fleetstream.js'), 'job', 'rollup'], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'inherit'],
      env: {
        ...process.env,
        FLEETSTREAM_KAFKA__BROKERS: env.FS_KAFKA_BROKERS,
        FLEETSTREAM_TOPICS__RAW: input,
        FLEETSTREAM_TOPICS__ROLLUPS1M: output,
        FLEETSTREAM_TOPICS__LATE: `${app}.late`,
        FLEETSTREAM_TOPICS__DEADLETTER: `${app}.dlq`,
        FLEETSTREAM_JOBS__APPLICATION_ID: app,
        FLEETSTREAM_JOBS__INSTANCE_ID: 'bench',
        FLEETSTREAM_JOBS__ROLLUP__INPUT: 'raw',
        FLEETSTREAM_JOBS__ROLLUP__WINDOWS: '1m',
        FLEETSTREAM_JOBS__OUT_OF_ORDERNESS_MS: String(OOO_MS),
        // Kafka Streams' grace is the out-of-orderness; no extra lateness on either side.
        FLEETSTREAM_JOBS__ALLOWED_LATENESS_MS: '0',
        FLEETSTREAM_JOBS__MAX_FUTURE_MS: '300000',
        FLEETSTREAM_LOG__LEVEL: 'warn',
        FLEETSTREAM_JOBS__METRICS__PORT: '0',
        ...extraEnv,
      },
    }),
  )
}

function kafkaStreamsJob(app: string, input: string, output: string) {
  return reapOnExit(
    spawn(
      'bash',
      [
        path.join(ROOT, 'bench/peers/kafka-streams/run.sh'),
        env.FS_KAFKA_BROKERS,
        app,
        input,
        output,
        String(OOO_MS),
        path.join(WORK, 'kstreams-state'),
      ],
      { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] },
    ),
  )
}

/**
 * End-to-end latency of fleetstream's rollup: readings of 1,000 devices once a second with an
 * event-time clock running 60× (one window per wall second), so windows close all the time. A
 * window can close once a reading at or past its end + out-of-orderness is produced; the
 * latency is from then to the rollup's arrival at a read_committed consumer.
 */
async function latency(telemetry: AvroCodec<Telemetry>, rollup: AvroCodec<Rollup>) {
  const app = `${RUN}-lat`
  const input = `${app}.in`
  const output = `${app}.out`
  await createTopics([input, output])
  const job = fleetstreamJob(app, input, output, { FLEETSTREAM_JOBS__TICK_MS: '100' })
  const speed = 60
  const devices = 1000
  const t0 = Date.now() + 5_000
  const ev0 = Math.floor((Date.now() - 3_600_000) / 60_000) * 60_000
  const wallAt = (evTs: number) => t0 + (evTs - ev0) / speed
  const evAt = (wall: number) => ev0 + (wall - t0) * speed
  const samples: number[] = []
  const consumer = kafka.consumer({ groupId: `${app}-reader`, readUncommitted: false })
  await consumer.connect()
  await consumer.subscribe({ topics: [output], fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ message }) => {
      const now = Date.now()
      const r = rollup.type.fromBuffer(message.value!.subarray(5)) as Rollup
      if (r.metric === 'temp') samples.push(now - wallAt(r.windowEnd + OOO_MS))
    },
  })
  const log = testKafkaLog()
  const producer = await log.producer()
  await new Promise((r) => setTimeout(r, Math.max(0, t0 - Date.now())))
  const endAt = t0 + LATENCY_S * 1000
  // Readings every 100 ms of wall time (6 s of event time), each device every tick.
  for (let tick = 0; Date.now() < endAt; tick++) {
    const due = t0 + tick * 100
    await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())))
    const ts = evAt(Date.now())
    await producer.send(
      Array.from({ length: devices / 10 }, (_, i) => {
        const d = (tick % 10) * (devices / 10) + i
        const e: Telemetry = {
          deviceId: `lat-${d}`,
          tenant: null,
          ts,
          receivedAt: ts,
          seq: tick,
          metrics: { temp: d % 40 },
          meta: {},
          source: 'mqtt',
        }
        return { topic: input, key: e.deviceId, value: telemetry.encode(e), timestamp: ts }
      }),
    )
  }
  await new Promise((r) => setTimeout(r, 3_000))
  await consumer.disconnect()
  await producer.close()
  await log.close()
  job.kill('SIGTERM')
  // The first windows opened before the job had joined its group: skip the warm-up.
  const steady = samples.slice(Math.floor(samples.length / 5))
  const r = { samples: steady.length, e2eP50Ms: pct(steady, 50), e2eP99Ms: pct(steady, 99) }
  out({ phase: 'latency', engine: 'fleetstream', ...r })
  return r
}

/** Heap bytes per 10,000 open windows of the rollup's window state (one aggregate each). */
function memoryPer10kWindows(): number {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('run with --expose-gc')
  const ws = newWindowState({ spec: { kind: 'tumbling', sizeMs: 60_000 }, allowedLatenessMs: 0 })
  gc()
  const before = process.memoryUsage().heapUsed
  const n = 100_000
  // One window per key: what 100,000 device-metric pairs in one open minute hold.
  for (let i = 0; i < n; i++) {
    advance(ws, { key: `dev-${i}\u0000temp`, ts: 1_000_000, value: i }, Number.NEGATIVE_INFINITY)
  }
  gc()
  const bytes = ((process.memoryUsage().heapUsed - before) / n) * 10_000
  // ws must stay reachable until measured (else the collector frees it first).
  out({ phase: 'memory', windows: ws.keys.size, bytesPer10kWindows: Math.round(bytes) })
  return Math.round(bytes)
}

async function main(): Promise<void> {
  const build = useCompiledBuild()
  execFileSync('bash', [path.join(ROOT, 'scripts/servers.sh'), 'start', 'kafka'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  execFileSync('bash', [path.join(ROOT, 'bench/peers/kafka-streams/run.sh'), '--fetch-only'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  rmSync(WORK, { recursive: true, force: true })
  mkdirSync(WORK, { recursive: true })
  const registry = new LocalSchemaRegistry()
  const telemetry = await createTelemetryCodec(registry)
  const rollup = await AvroCodec.bundled<Rollup>(registry, 'rollup.avsc')

  const input = `${RUN}.in`
  await createTopics([input])
  const total = await produceInput(input, telemetry)

  // Rounds alternate the engines over the same input (fresh groups and output topics), so a
  // noisy moment on the shared machine does not decide the ratio; the median round counts.
  const rounds: {
    round: number
    ratio: number
    ratioJobProcessOnly: number
    fleetstream: JobRun
    kafkaStreams: JobRun
  }[] = []
  let check: ReturnType<typeof crossCheck> | undefined
  for (let round = 1; round <= ROUNDS; round++) {
    const fsApp = `${RUN}-fs${round}`
    const ksApp = `${RUN}-ks${round}`
    await createTopics([`${fsApp}.out`, `${ksApp}.out`])
    const profile = process.env.BENCH_PROFILE === '1' && round === 1
    const fs = await measure(
      'fleetstream',
      fleetstreamJob(
        fsApp,
        input,
        `${fsApp}.out`,
        {},
        profile ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : [],
      ),
      `${fsApp}-rollup`,
      input,
      `${fsApp}.out`,
      total,
    )
    const ks = await measure(
      'kafka-streams',
      kafkaStreamsJob(ksApp, input, `${ksApp}.out`),
      ksApp,
      input,
      `${ksApp}.out`,
      total,
    )
    if (round === 1) {
      check = crossCheck(await readRollups(`${fsApp}.out`, rollup), await readRollups(`${ksApp}.out`, rollup))
      if (check.mismatches > 0 || check.common === 0) throw new Error('the engines disagree: no ratio')
    }
    const r = {
      round,
      ratio: +(fs.eventsPerCpuS / ks.eventsPerCpuS).toFixed(3),
      ratioJobProcessOnly: +(fs.eventsPerJobCpuS / ks.eventsPerJobCpuS).toFixed(3),
      fleetstream: fs,
      kafkaStreams: ks,
    }
    out({ phase: 'round', round, ratio: r.ratio, ratioJobProcessOnly: r.ratioJobProcessOnly })
    rounds.push(r)
  }
  const median = [...rounds].sort((a, b) => a.ratio - b.ratio)[Math.floor(rounds.length / 2)]!
  const lat = await latency(telemetry, rollup)
  const mem = memoryPer10kWindows()

  const result = {
    bench: 'jobs',
    date: new Date().toISOString(),
    command: 'npm run bench:jobs',
    machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
    ...build,
    input: { readings: total, devices: D, partitions: PARTS, metricsPerReading: 2, outOfOrdernessMs: OOO_MS },
    // The median round's figures (rounds: all of them).
    ratio: median.ratio,
    ratioJobProcessOnly: median.ratioJobProcessOnly,
    crossCheck: check,
    fleetstream: median.fleetstream,
    kafkaStreams: median.kafkaStreams,
    rounds,
    latency: lat,
    memory: { bytesPer10kWindows: mem },
    profileTop: process.env.BENCH_PROFILE === '1' ? summarizeProfile(PROFILE_DIR) : undefined,
  }
  out({ phase: 'result', ratio: result.ratio, ratioJobProcessOnly: result.ratioJobProcessOnly })
  mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true })
  writeFileSync(path.join(ROOT, 'bench/results/jobs.json'), `${JSON.stringify(result, null, 2)}\n`)
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  },
)
