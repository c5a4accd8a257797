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
 * its next reading). Throughput: readings stored (counted in SQLite) over the time from the
 * first publish to the last row. Latency: a probe device publishes one reading every 50 ms
 * during the run; the time from its publish to its row appearing in SQLite (polled every 2 ms).
 * Devices are registered with scrypt cost 1024 (`bridge.auth.scryptN`) so that 10,000 logins do
 * not take minutes of CPU. One JSON object per line on stdout; bench/results/up.json.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
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
import { cpuOfPid, pct, rssMiB, serverPid } from './lib/proc'

const ROOT = path.resolve(__dirname, '..')
const D = Number(process.env.BENCH_DEVICES ?? 10_000)
const R = Number(process.env.BENCH_READINGS ?? 10)
const PROFILE_DIR = path.join(ROOT, 'bench/.work/up-profile')
/** `up` with its roles on the real Kafka instead of the embedded log. */
const ON_KAFKA = process.env.BENCH_KAFKA === '1'
const out = (o: object) => process.stdout.write(`${JSON.stringify({ bench: 'up', ...o })}\n`)

async function main(): Promise<void> {
  const build = useCompiledBuild()
  const dataDir = mkdtempSync(path.join(tmpdir(), 'fs-bench-up-'))
  const cfg = bridgeRoleConfig.parse({
    bridge: { auth: { file: path.join(dataDir, 'devices.json'), scryptN: 1024 } },
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

  const up = await startUp(
    dataDir,
    ON_KAFKA ? { brokers: serverEnv().FS_KAFKA_BROKERS, prefix: uniqueName('bench-up') } : undefined,
    {
      FLEETSTREAM_BRIDGE__LIMITS__MAX_CONNECTIONS: String(D + 100),
    },
    [
      ...(process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : []),
      ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
    ],
  ) // BENCH_PROFILE=1: profile `up`
  const pid = up.proc.pid!
  const rssIdle = rssMiB(pid)
  const db = new Database(path.join(dataDir, 'fleetstream.db'), { readonly: true, fileMustExist: true })
  const count = db.prepare("SELECT count(*) AS n FROM telemetry WHERE device_id LIKE 'b-%'")
  const probeRow = db.prepare("SELECT 1 FROM telemetry WHERE device_id = 'probe' AND seq = ?")
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
  const latencies: number[] = []
  let probing = true
  /** Probes run while the fleet sends (not while it logs in). */
  const probeRun = async () => {
    for (let seq = 0; probing; seq++) {
      const t0 = performance.now()
      await probeClient.publishAsync('devices/probe/telemetry', JSON.stringify({ seq, temperature: 20 }), {
        qos: 1,
      })
      while (!probeRow.get(seq) && performance.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 2))
      latencies.push(performance.now() - t0)
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  let probeLoop: Promise<void> | undefined

  // Clocks start at the first acknowledged reading: every device has logged in by then.
  let cpuUp0 = 0
  const broker = ON_KAFKA ? serverPid('kafka') : 0
  let cpuKafka0 = 0
  let cpuSim0 = process.cpuUsage()
  let start = 0
  const begin = performance.now()
  let rssPeak = 0
  const rssTimer = setInterval(() => (rssPeak = Math.max(rssPeak, rssMiB(pid))), 500)
  const summary = await simulate({
    devices,
    transport: 'mqtt',
    httpUrl: '',
    mqttUrl: `mqtt://127.0.0.1:${up.listening.mqtt}`,
    readings: R,
    intervalMs: 1000,
    batch: 1,
    concurrency: D,
    faults: { outOfOrder: 0, late: 0, offline: 0, skew: 0, bad: 0 },
    lateMs: 0,
    skewMs: 0,
    connectFirst: true,
    onProgress: (done) => {
      if (done === 0 || start) return
      start = performance.now()
      cpuUp0 = cpuOfPid(pid)
      if (broker) cpuKafka0 = cpuOfPid(broker)
      cpuSim0 = process.cpuUsage()
      probeLoop = probeRun()
    },
  })
  while (rows() < summary.acknowledged && performance.now() - begin < 600_000)
    await new Promise((r) => setTimeout(r, 20))
  const seconds = (performance.now() - start) / 1000
  clearInterval(rssTimer)
  probing = false
  await probeLoop
  await probeClient.endAsync()
  const cpuUp = cpuOfPid(pid) - cpuUp0
  const cpuKafka = broker ? cpuOfPid(broker) - cpuKafka0 : undefined
  const simCpu = process.cpuUsage(cpuSim0)
  const stored = rows()
  db.close()
  await up.close()

  const result = {
    bench: 'up',
    readings_per_s: Math.round(stored / seconds),
    p50_ms: pct(latencies, 50),
    p99_ms: pct(latencies, 99),
    goal: { readings_per_s: 20_000, p99_ms: 1000 },
    devices: D,
    readings: D * R,
    acknowledged: summary.acknowledged,
    stored,
    seconds: +seconds.toFixed(2),
    latency_probes: latencies.length,
    transport: ON_KAFKA ? 'kafka' : 'embedded log',
    cpu_s: {
      up: +cpuUp.toFixed(2),
      simulator: +((simCpu.user + simCpu.system) / 1e6).toFixed(2),
      ...(cpuKafka === undefined ? {} : { kafka: +cpuKafka.toFixed(2) }),
    },
    rss_mib: { up_idle: +rssIdle.toFixed(1), up_peak: +rssPeak.toFixed(1) },
    command: ON_KAFKA ? 'BENCH_KAFKA=1 npm run bench:up' : 'npm run bench:up',
    ...build,
    at: new Date().toISOString(),
  }
  out(result)
  if (process.env.BENCH_PROFILE) out({ profile: summarizeProfile(PROFILE_DIR) })
  const file = ON_KAFKA ? 'up-kafka.json' : 'up.json'
  writeFileSync(path.join(ROOT, 'bench/results', file), `${JSON.stringify(result, null, 2)}\n`)
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${(err as Error).stack}\n`)
    process.exit(1)
  },
)
