/**
 * `fleetstream up` benchmark: readings per second through the whole embedded pipeline (MQTT
 * publish → bridge → embedded log → enrich → sink → a row in SQLite, with the rollup and rules
 * jobs running beside), end-to-end latency from publish to row, and memory, on 2 cores.
 *
 *   npm run bench:up      (BENCH_DEVICES=10000, BENCH_READINGS=10 per device)
 *   BENCH_KAFKA=1 npm run bench:up   the same roles on the test Kafka broker (`--kafka`, started
 *                                    by scripts/servers.sh), its CPU counted; bench/results/up-kafka.json
 *
 * The simulated fleet runs in this process over MQTT QoS 1 (each device waits for its ack before
 * its next message). Four phases:
 *   1. throughput: every device sends as soon as its previous reading is acknowledged; readings
 *      stored (counted in SQLite) over the time from the first publish to the last row;
 *   2. latency at a sustained rate: the same fleet paced at BENCH_RATE readings/s (default 2,000;
 *      each device reports every devices/rate s) for about BENCH_PACED_S seconds (default 20);
 *   3–4. the same two with BENCH_BATCH readings per message (default 10; 1 skips them; the
 *      bridge's batch form, a JSON array), BENCH_BATCH_READINGS per device (default 50) in 3 and
 *      paced at BENCH_BATCH_RATE readings/s (default 20,000, the goal's rate; 15,000 until the
 *      eighth session, when `up` could not yet hold 20,000 without a standing queue) in 4:
 *      devices that buffer readings.
 * Latency, in all: a probe device publishes one reading every 50 ms (not waiting for the ones
 * before); the time from each publish to its row appearing in SQLite (polled every 2 ms). The top-level
 * readings_per_s, p50/p99 are phases 1 and 2's; phase 1's latency (a queue of 10,000 devices'
 * readings in front of every probe) is under `saturated`; phases 3–4 under `batched`.
 * Devices are registered with the default token hashing (`bridge.auth.tokenHash`: salted
 * HMAC-SHA-256). Before `up` starts, the same fleet runs against Mosquitto (the peer: a broker
 * that only acknowledges, see mosquittoPeer; BENCH_PEER=0 skips it). BENCH_UP_ENV passes settings
 * to `up`. One JSON object per line on stdout; bench/results/up.json.
 */
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import path from 'node:path'
import Database from 'better-sqlite3'
import mqtt from 'mqtt'
import { createDeviceStore } from '../bridge/auth'
import { bridgeRoleConfig } from '../bridge/config'
import { simulate } from '../simulator/simulate'
import { serverEnv, uniqueName } from '../test/servers'
import { startUp } from '../test/up-process'
import { useCompiledBuild } from './lib/build'
import { summarizeProfile } from './lib/profile'
import { cpuOfPid, machineCpu, pct, reapOnExit, rssMiB, runningServers, serverPid } from './lib/proc'

const ROOT = path.resolve(__dirname, '..')
const D = Number(process.env.BENCH_DEVICES ?? 10_000)
const R = Number(process.env.BENCH_READINGS ?? 10)
/** Phase 2: the fleet paced at this many readings a second for about PACED_S seconds. */
const RATE = Number(process.env.BENCH_RATE ?? 2_000)
const PACED_S = Number(process.env.BENCH_PACED_S ?? 20)
/** A latency probe is sent this often (ms) while the fleet sends. */
const PROBE_EVERY_MS = 50
/** Phases 3–4: readings per MQTT message (1 skips them), per device in phase 3, and phase 4's rate. */
const BATCH = Number(process.env.BENCH_BATCH ?? 10)
const BATCH_READINGS = Number(process.env.BENCH_BATCH_READINGS ?? 50)
const BATCH_RATE = Number(process.env.BENCH_BATCH_RATE ?? 20_000)
const PROFILE_DIR = path.join(ROOT, 'bench/.work/up-profile')
/** `up` with its roles on the real Kafka instead of the embedded log. */
const ON_KAFKA = process.env.BENCH_KAFKA === '1'
/** Settings for `up`, to try one: BENCH_UP_ENV='FLEETSTREAM_UP__FETCH_LINGER_MS=20 …' (recorded in the result). */
const UP_ENV = Object.fromEntries(
  (process.env.BENCH_UP_ENV ?? '')
    .split(/\s+/)
    .filter(Boolean)
    .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
)
const out = (o: object) => process.stdout.write(`${JSON.stringify({ bench: 'up', ...o })}\n`)

async function main(): Promise<void> {
  const build = useCompiledBuild()
  // Servers this run does not use take CPU from it: said on stderr and in the result.
  const bystanders = runningServers().filter((s) => !(ON_KAFKA && s === 'kafka'))
  if (bystanders.length > 0)
    process.stderr.write(
      `bench:up: test servers running beside the bench (${bystanders.join(', ')}): they take CPU from it; bash scripts/servers.sh stop${ON_KAFKA ? ' and start kafka' : ''} first for clean numbers\n`,
    )
  const dataDir = mkdtempSync(path.join(tmpdir(), 'fs-bench-up-'))
  const cfg = bridgeRoleConfig.parse({
    bridge: { auth: { file: path.join(dataDir, 'devices.json') } },
  })
  const store = createDeviceStore(cfg.bridge.auth)
  const devices: { deviceId: string; token: string }[] = []
  for (let i = 0; i < D; i += 64)
    devices.push(
      ...(await Promise.all(Array.from({ length: Math.min(64, D - i) }, (_, k) => store.add(`b-${i + k}`)))),
    )
  const probe = await store.add('probe')
  await store.close()
  out({ event: 'devices registered', devices: D })

  const peer = process.env.BENCH_PEER === '0' ? undefined : await mosquittoPeer(devices)
  if (peer) out({ event: 'peer', ...peer })

  /** What the bench sets for `up` (recorded in the result). */
  const UP_SETTINGS = {
    FLEETSTREAM_BRIDGE__LIMITS__MAX_CONNECTIONS: String(D + 100),
    // Every device has one message in flight: D × BATCH readings at once in phase 3. Over the
    // write buffer (default 50,000) the bridge pushes back by closing connections, and the
    // simulator's devices do not reconnect.
    FLEETSTREAM_BRIDGE__WRITER__MAX_BUFFERED_RECORDS: String(Math.max(50_000, 2 * D * BATCH)),
  }
  const up = await startUp(
    dataDir,
    ON_KAFKA ? { brokers: serverEnv().FS_KAFKA_BROKERS, prefix: uniqueName('bench-up') } : undefined,
    { ...UP_SETTINGS, ...UP_ENV },
    [
      ...(process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : []),
      ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
    ],
  ) // BENCH_PROFILE=1: profile `up`
  const pid = up.proc.pid!
  const rssIdle = rssMiB(pid)
  const db = new Database(path.join(dataDir, 'fleetstream.db'), { readonly: true, fileMustExist: true })
  const count = db.prepare("SELECT count(*) AS n FROM telemetry WHERE device_id LIKE 'b-%'")
  const rows = () => Number((count.get() as { n: number }).n)

  const probeClient = await mqtt.connectAsync(
    `mqtt://127.0.0.1:${up.listening.mqtt}`,
    {
      clientId: 'probe',
      username: 'probe',
      password: probe.token,
      reconnectPeriod: 0,
    },
    false,
  ) // false: a socket closed before the CONNACK rejects (else it never settles)
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
  let probing = false
  let probeSeq = 0
  /** The probe's rows stamped at or after a time (the key's order: device, ts, seq). */
  const probeRows = db.prepare("SELECT seq FROM telemetry WHERE device_id = 'probe' AND ts >= ?").pluck()
  /**
   * Probes run while the fleet sends (not while it logs in): one reading every PROBE_EVERY_MS,
   * whatever became of the ones before, until `probing` is cleared; then the ones in flight are
   * waited for. A probe that waited for its predecessor's row (as this bench did before) samples
   * a stall once however long it lasts, and reads a p99 too low. Latency: publish → its row in
   * the store (polled every 2 ms). A probe not stored within 30 s ends the run.
   */
  const probeRun = async (latencies: number[]) => {
    probing = true
    /** Probes sent, not yet stored: seq → [publish time, its `ts`], in sending order. */
    const outstanding = new Map<number, [number, number]>()
    let failed: Error | undefined
    const send = setInterval(() => {
      const seq = probeSeq++
      const ts = Date.now()
      outstanding.set(seq, [performance.now(), ts])
      probeClient
        .publishAsync('devices/probe/telemetry', JSON.stringify({ ts, seq, temperature: 20 }), { qos: 1 })
        .catch((err: Error) => (failed ??= err))
    }, PROBE_EVERY_MS)
    try {
      while (probing || outstanding.size > 0) {
        await sleep(2)
        if (!probing) clearInterval(send)
        if (failed) throw failed
        const first = outstanding.entries().next().value
        if (!first) continue
        const now = performance.now()
        for (const seq of probeRows.all(first[1][1]) as number[]) {
          const sent = outstanding.get(seq)
          if (!sent) continue
          outstanding.delete(seq)
          latencies.push(now - sent[0])
          // BENCH_PROBES=1: each probe on stderr (seconds since the bench began, ms), to see when the slow ones come.
          if (process.env.BENCH_PROBES === '1')
            process.stderr.write(`probe ${(sent[0] / 1000).toFixed(2)} ${(now - sent[0]).toFixed(0)}\n`)
        }
        if (outstanding.has(first[0]) && now - first[1][0] > 30_000)
          throw new Error(`probe ${first[0]}: not stored within 30 s`)
      }
    } finally {
      clearInterval(send)
    }
  }
  let probeLoop: Promise<void> | undefined
  const fleet = fleetOf(devices, `mqtt://127.0.0.1:${up.listening.mqtt}`)

  /**
   * Waits until `target` fleet rows are stored (or `deadline`); returns the rows stored. Polls
   * every 20 ms only near the end, at the rate rows have been arriving: a count over the table
   * costs the bench ~9 ms of CPU per 100,000 rows, which it takes from `up` while it drains (a
   * poll every 20 ms took ~30% of a core by the end of phase 1).
   */
  const waitForRows = async (target: number, deadline: number): Promise<number> => {
    let n = rows()
    let t = performance.now()
    let perMs = 0
    while (n < target && t < deadline) {
      await sleep(perMs > 0 ? Math.min(1000, Math.max(20, (target - n) / perMs / 2)) : 20)
      const [n1, t1] = [rows(), performance.now()]
      perMs = (n1 - n) / (t1 - t)
      ;[n, t] = [n1, t1]
    }
    return n
  }
  /**
   * Event time of a phase's readings, `intervalMs` apart per device, the first `back` intervals
   * before now: after every reading of the phases before (a device's readings never go back in
   * time from one phase to the next), and at least a second apart, whatever the pace: the
   * example rate rule (5 °C/min between consecutive readings) reads a sensor's noise over less
   * than a second as a fast change, and a healthy fleet should not raise alerts.
   */
  let lastTs = 0
  const stamps = (intervalMs: number, readings: number, back: number) => {
    const startTs = Math.max(Date.now() - back * intervalMs, lastTs + intervalMs)
    lastTs = startTs + (readings - 1) * intervalMs
    return { startTs, intervalMs }
  }
  const broker = ON_KAFKA ? serverPid('kafka') : 0
  let rssPeak = 0
  const rssTimer = setInterval(() => (rssPeak = Math.max(rssPeak, rssMiB(pid))), 500)

  /**
   * Phases 1 and 3, throughput: every device sends its next message (of `batch` readings) as soon
   * as its last one is acknowledged. Clocks start at the first acknowledgement (every device has
   * logged in by then) and stop at the last row stored; the simulator's CPU at its last ack.
   */
  const throughput = async (batch: number, readings: number) => {
    const base = rows()
    let cpuUp0 = 0
    let cpuKafka0 = 0
    let cpuSim0 = process.cpuUsage()
    let start = 0
    const begin = performance.now()
    const saturated: number[] = []
    let machine0 = machineCpu()
    const cpuLogin0 = cpuOfPid(pid)
    /** The fleet's logins: every device verified once. */
    let login = { up_cpu_s: 0, s: 0 }
    const summary = await simulate({
      ...fleet,
      batch,
      readings,
      ...stamps(1000, readings, readings - 1),
      connectTimeoutMs: 120_000,
      onProgress: (done) => {
        if (done === 0 || start) return
        start = performance.now()
        cpuUp0 = cpuOfPid(pid)
        login = { up_cpu_s: +(cpuUp0 - cpuLogin0).toFixed(2), s: +((start - begin) / 1000).toFixed(1) }
        if (broker) cpuKafka0 = cpuOfPid(broker)
        cpuSim0 = process.cpuUsage()
        machine0 = machineCpu()
        probeLoop = probeRun(saturated)
      },
    })
    const simCpu = process.cpuUsage(cpuSim0)
    const stored = (await waitForRows(base + summary.acknowledged, begin + 600_000)) - base
    const seconds = (performance.now() - start) / 1000
    const cpu: Record<string, number> = {
      up: cpuOfPid(pid) - cpuUp0,
      simulator: (simCpu.user + simCpu.system) / 1e6,
      ...(broker ? { kafka: cpuOfPid(broker) - cpuKafka0 } : {}),
    }
    const machine1 = machineCpu()
    probing = false
    await probeLoop
    return {
      readings_per_s: Math.round(stored / seconds),
      readings_per_message: batch,
      devices: D,
      readings: D * readings,
      acknowledged: summary.acknowledged,
      stored,
      seconds: +seconds.toFixed(2),
      rejected: summary.rejected,
      unanswered: summary.unanswered,
      cpu_s: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, +v.toFixed(2)])),
      // CPU per stored reading, µs, and how busy the whole machine was meanwhile (1: both
      // cores): when it is near 1, throughput is bounded by the sum of the per-reading costs, and
      // `cpu_bound_readings_per_s` is what the cores could carry at those costs with nothing else.
      cpu_us_per_reading: Object.fromEntries(
        Object.entries(cpu).map(([k, v]) => [k, Math.round((v * 1e6) / stored)]),
      ),
      machine_busy: +((machine1.busy - machine0.busy) / (machine1.total - machine0.total)).toFixed(2),
      cpu_bound_readings_per_s: Math.round(
        (cpus().length * stored) / Object.values(cpu).reduce((x, y) => x + y, 0),
      ),
      // Latency while the fleet sends as fast as it can (a queue of every device's message in
      // front of each probe).
      saturated: { probes: saturated.length, p50_ms: pct(saturated, 50), p99_ms: pct(saturated, 99) },
      login,
    }
  }

  /**
   * Between phases: the fleet's connections are closed (else the bridge may still count them
   * against its connection limit), and the jobs behind the sink (rollups, rules) have caught up:
   * `up` idle (under 10% of a core for two seconds in a row), so that the next logins and
   * readings do not queue behind this phase's backlog. Returns the seconds it took.
   */
  const settle = async (): Promise<number> => {
    const connected = async () => {
      const text = await (await fetch(`http://127.0.0.1:${up.listening.http}/metrics`)).text()
      return text
        .split('\n')
        .filter((l) => l.startsWith('fleetstream_bridge_connections'))
        .reduce((n, l) => n + Number(l.split(' ').pop()), 0)
    }
    const t0 = performance.now()
    while ((await connected()) > 1 && performance.now() - t0 < 30_000) await sleep(100)
    for (let idle = 0, cpu = cpuOfPid(pid); idle < 2 && performance.now() - t0 < 150_000;) {
      await sleep(1000)
      const now = cpuOfPid(pid)
      idle = now - cpu < 0.1 ? idle + 1 : 0
      cpu = now
    }
    return +((performance.now() - t0) / 1000).toFixed(1)
  }

  /**
   * Phases 2 and 4, latency at a rate the pipeline sustains: the fleet paced at `rate` readings/s
   * in messages of `batch` (each device reports every D·batch/rate s) for about PACED_S seconds,
   * probes timed from publish to row.
   */
  const latency = async (batch: number, rate: number) => {
    const perDevice = batch * Math.max(1, Math.round((rate * PACED_S) / D / batch))
    const settle_s = await settle()
    const base = rows()
    const probes: number[] = []
    let start = 0
    let cpu0 = 0
    const summary = await simulate({
      ...fleet,
      batch,
      readings: perDevice,
      ...stamps(Math.max(1000, (D * 1000) / rate), perDevice, batch - 1),
      ratePerS: rate,
      connectTimeoutMs: 120_000,
      onProgress: (done) => {
        if (done === 0 || start) return
        start = performance.now()
        cpu0 = cpuOfPid(pid)
        probeLoop = probeRun(probes)
      },
    })
    const send = (performance.now() - start) / 1000
    probing = false
    await probeLoop
    const cpu = cpuOfPid(pid) - cpu0
    const stored = (await waitForRows(base + summary.acknowledged, performance.now() + 300_000)) - base
    return {
      readings_per_message: batch,
      offered_readings_per_s: rate,
      sent_readings_per_s: Math.round(summary.sent / send),
      acknowledged: summary.acknowledged,
      stored,
      rejected: summary.rejected,
      unanswered: summary.unanswered,
      settle_s,
      login_s: +(summary.seconds - summary.sendSeconds).toFixed(1),
      probes: probes.length,
      p50_ms: pct(probes, 50),
      p99_ms: pct(probes, 99),
      max_ms: Math.round(Math.max(...probes)),
      up_cpu_s: +cpu.toFixed(2),
    }
  }

  // 1–2: one reading per message; 3–4: BATCH readings per message (the bridge's batch form).
  const single = await throughput(1, R)
  out({ phase: 'throughput', ...single })
  const pacedSingle = await latency(1, RATE)
  out({ phase: 'latency', ...pacedSingle })
  const batched = await (async () => {
    if (BATCH <= 1) return undefined
    await settle()
    const t = await throughput(BATCH, BATCH_READINGS)
    out({ phase: 'batched throughput', ...t })
    const l = await latency(BATCH, BATCH_RATE)
    out({ phase: 'batched latency', ...l })
    return { ...t, latency: l }
  })()
  clearInterval(rssTimer)
  await probeClient.endAsync()
  const alerts = Number((db.prepare('SELECT count(*) AS n FROM alerts').get() as { n: number }).n)
  db.close()
  await up.close()
  // The run's journal and store (~450 MB): a machine that benchmarks again does not keep them.
  rmSync(dataDir, { recursive: true, force: true })

  const { login, saturated, readings_per_s, readings_per_message: _one, ...phase1 } = single
  const result = {
    bench: 'up',
    readings_per_s,
    // Latency at the paced rate; `saturated` has it while the fleet sends as fast as it can.
    p50_ms: pacedSingle.p50_ms,
    p99_ms: pacedSingle.p99_ms,
    goal: { readings_per_s: 20_000, p99_ms: 1000 },
    latency: pacedSingle,
    login_storm: { devices: D, ...login },
    saturated,
    ...phase1,
    transport: ON_KAFKA ? 'kafka' : 'embedded log',
    rss_mib: { up_idle: +rssIdle.toFixed(1), up_peak: +rssPeak.toFixed(1) },
    // Alerts the example rules raised over the whole run (rows of the store's alerts table): a
    // healthy simulated fleet raises few; each one costs the rules job, the alert consumer and the sink.
    alerts,
    // The same fleet against a broker that only acknowledges (see mosquittoPeer), before `up` started.
    ...(peer && {
      peer,
      up_cpu_per_reading_vs_peer_broker: +(
        single.cpu_s.up! /
        single.stored /
        (peer.cpu_s.mosquitto / peer.acknowledged)
      ).toFixed(1),
    }),
    // Phases 3–4: the same fleet sending BATCH readings per MQTT message (a JSON array), as
    // devices that buffer readings do; the pipeline after the bridge is the same per reading.
    ...(batched && { batched }),
    up_settings: UP_SETTINGS,
    ...(Object.keys(UP_ENV).length > 0 && { up_env: UP_ENV }),
    ...(bystanders.length > 0 && { servers_running_beside: bystanders }),
    command: ON_KAFKA ? 'BENCH_KAFKA=1 npm run bench:up' : 'npm run bench:up',
    ...build,
    at: new Date().toISOString(),
  }
  out(result)
  if (process.env.BENCH_PROFILE) out({ profile: summarizeProfile(PROFILE_DIR) })
  const file = ON_KAFKA ? 'up-kafka.json' : 'up.json'
  writeFileSync(path.join(ROOT, 'bench/results', file), `${JSON.stringify(result, null, 2)}\n`)
}

/** The simulated fleet: MQTT QoS 1, every device connected before the first reading, no faults. */
const fleetOf = (devices: { deviceId: string; token: string }[], mqttUrl: string) => ({
  devices,
  transport: 'mqtt' as const,
  httpUrl: '',
  mqttUrl,
  batch: 1,
  concurrency: devices.length,
  faults: { outOfOrder: 0, late: 0, offline: 0, skew: 0, bad: 0 },
  lateMs: 0,
  skewMs: 0,
  connectFirst: true,
})
/** The peer's sending, as phase 1's: R readings per device, each as soon as the last is acknowledged. */
const FLAT_OUT = { connectTimeoutMs: 120_000, readings: R, intervalMs: 1000 }

/**
 * The peer, measured in the same run: the same fleet, the same `simulate` call (10 readings per
 * device, QoS 1, each device waiting for its ack), against Mosquitto (the Debian package, C,
 * one thread) with no authentication, no persistence and no subscriber: an MQTT broker that
 * only acknowledges. What it costs per reading is the floor any MQTT pipeline pays on this
 * machine, and the simulator's CPU against it is what the load generator itself takes.
 */
async function mosquittoPeer(devices: { deviceId: string; token: string }[]) {
  const bin = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'].find((f) => existsSync(f))
  if (!bin) {
    // scripts/servers.sh installs the Debian package (and starts the tests' instance).
    execFileSync('bash', [path.join(ROOT, 'scripts/servers.sh'), 'start', 'mosquitto'], { stdio: 'inherit' })
  }
  const exe = bin ?? ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'].find((f) => existsSync(f))!
  const dir = mkdtempSync(path.join(tmpdir(), 'fs-bench-mosquitto-'))
  // Below Linux's ephemeral ports (32768–60999): the fleet's 10,000 closed connections leave
  // their ports in TIME-WAIT, and a port among them failed the broker's bind once.
  const port = 20_000 + Math.floor(Math.random() * 12_000)
  const conf = path.join(dir, 'mosquitto.conf')
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      'max_queued_messages 0',
      'max_inflight_messages 1000',
      'log_dest none',
      ...(process.getuid?.() === 0 ? ['user root'] : []),
      '',
    ].join('\n'),
  )
  const broker = reapOnExit(spawn(exe, ['-c', conf], { stdio: 'ignore' }))
  try {
    for (const t0 = performance.now(); ;) {
      const ok = await mqtt
        .connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 1000 }, false)
        .then((c) => c.endAsync().then(() => true))
        .catch(() => false)
      if (ok) break
      if (performance.now() - t0 > 10_000) throw new Error('mosquitto did not start within 10 s')
      await new Promise((r) => setTimeout(r, 100))
    }
    let start = 0
    let cpuBroker0 = 0
    let cpuSim0 = process.cpuUsage()
    const summary = await simulate({
      ...fleetOf(devices, `mqtt://127.0.0.1:${port}`),
      ...FLAT_OUT,
      onProgress: (done) => {
        if (done === 0 || start) return
        start = performance.now()
        cpuBroker0 = cpuOfPid(broker.pid!)
        cpuSim0 = process.cpuUsage()
      },
    })
    // The clock stops at the last acknowledgement (the broker stores nothing).
    const seconds = summary.sendSeconds
    const sim = process.cpuUsage(cpuSim0)
    const cpu = { mosquitto: cpuOfPid(broker.pid!) - cpuBroker0, simulator: (sim.user + sim.system) / 1e6 }
    return {
      broker: `mosquitto (${exe}), no auth, no persistence, no subscriber`,
      readings_per_s: Math.round(summary.acknowledged / seconds),
      acknowledged: summary.acknowledged,
      cpu_s: { mosquitto: +cpu.mosquitto.toFixed(2), simulator: +cpu.simulator.toFixed(2) },
      cpu_us_per_reading: {
        mosquitto: Math.round((cpu.mosquitto * 1e6) / summary.acknowledged),
        simulator: Math.round((cpu.simulator * 1e6) / summary.acknowledged),
      },
    }
  } finally {
    broker.kill('SIGTERM')
    await new Promise((r) => (broker.exitCode !== null ? r(undefined) : broker.once('exit', r)))
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${(err as Error).stack}\n`)
    process.exit(1)
  },
)
