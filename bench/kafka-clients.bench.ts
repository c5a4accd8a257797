/**
 * Kafka client comparison on the real test broker: produce (batched, acks=all, idempotent)
 * and consume throughput of kafkajs, @platformatic/kafka, @confluentinc/kafka-javascript (when
 * its peer install under bench/peers/ built) and kcat (librdkafka's CLI, the native yardstick).
 *
 *   npm run bench:kafka-clients            (BENCH_MESSAGES=1000000 by default)
 *
 * Each client runs alone, in its own process; CPU-seconds are the client's plus the broker's
 * (read from /proc), since both share the machine's two cores. One JSON object per line on
 * stdout; the whole result is written to bench/results/kafka-clients.json.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { LocalSchemaRegistry } from '../core/envelope/registry'
import { createTelemetryCodec } from '../core/envelope/telemetry'
import { testKafkaLog } from '../test/kafka'
import { serverEnv } from '../test/servers'

const ROOT = path.resolve(__dirname, '..')
const WORK = path.join(ROOT, 'bench/.work')
const N = Number(process.env.BENCH_MESSAGES ?? 1_000_000)
const DEVICES = 10_000
const PARTITIONS = 6
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())

interface PhaseResult {
  bench: string
  client: string
  phase: 'produce' | 'consume'
  messages: number
  wallS: number
  msgsPerS: number
  clientCpuS: number
  brokerCpuS: number
  msgsPerCpuS: number
}

function brokerCpuS(): number {
  const pid = readFileSync('/tmp/fleetstream-servers/kafka/pid', 'utf8').trim()
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  // After "pid (comm) ", utime and stime are fields 12 and 13 (0-based).
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
}

function kcatAvailable(): boolean {
  return spawnSync('kcat', ['-V']).status === 0
}

function confluentAvailable(): boolean {
  return existsSync(
    path.join(ROOT, 'bench/peers/confluent-kafka/node_modules/@confluentinc/kafka-javascript/build/Release'),
  )
}

/** Runs a client phase; returns messages, wall seconds and the client's CPU seconds. */
function runPhase(
  client: string,
  phase: 'produce' | 'consume',
  topic: string,
  file: string,
): { messages: number; wallS: number; cpuS: number } {
  const brokers = serverEnv().FS_KAFKA_BROKERS
  if (client === 'kcat') {
    const cmd =
      phase === 'produce'
        ? `kcat -P -b ${brokers} -t ${topic} -K '\t' -X acks=all -X enable.idempotence=true -X linger.ms=5 -l ${file}`
        : `kcat -C -b ${brokers} -t ${topic} -o beginning -e -q -c ${N} -f 'x\\n' | wc -l > ${WORK}/kcat-count`
    const t0 = process.hrtime.bigint()
    // `times` prints the CPU of the shell's children (kcat, wc) on its second line.
    const out = execFileSync('bash', ['-c', `${cmd}; times`], { encoding: 'utf8', maxBuffer: 1 << 26 })
    const wallS = Number(process.hrtime.bigint() - t0) / 1e9
    const [user, sys] = out
      .trim()
      .split('\n')
      .pop()!
      .split(' ')
      .map((t) => {
        const m = /(\d+)m([\d.]+)s/.exec(t)!
        return Number(m[1]) * 60 + Number(m[2])
      })
    const messages = phase === 'produce' ? N : Number(readFileSync(`${WORK}/kcat-count`, 'utf8').trim())
    return { messages, wallS, cpuS: user! + sys! }
  }
  const out = execFileSync(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(__dirname, 'kafka-clients/worker.ts'),
      client,
      phase,
      brokers,
      topic,
      file,
      String(N),
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], cwd: ROOT, timeout: 600_000 },
  )
  const r = JSON.parse(out.trim().split('\n').pop()!) as { messages: number; wallS: number; cpuS: number }
  return r
}

async function main(): Promise<void> {
  execFileSync('bash', [path.join(ROOT, 'scripts/servers.sh'), 'start', 'kafka'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  if (process.env.BENCH_SKIP_PEER_INSTALL !== '1') {
    const r = spawnSync('bash', [path.join(__dirname, 'peers/install.sh')], { stdio: ['ignore', 2, 2] })
    if (r.status !== 0) process.stderr.write('peer install failed: the missing peers are skipped below\n')
  }
  mkdirSync(WORK, { recursive: true })

  // The same N Avro envelopes (base64, so kcat's line format holds them) for every client.
  const codec = await createTelemetryCodec(new LocalSchemaRegistry())
  const file = path.join(WORK, 'messages.tsv')
  const lines: string[] = []
  for (let i = 0; i < N; i++) {
    const deviceId = `device-${i % DEVICES}`
    const v = codec.encode({
      deviceId,
      tenant: 'acme',
      ts: 1_764_000_000_000 + i,
      receivedAt: 1_764_000_000_000 + i,
      seq: Math.floor(i / DEVICES),
      metrics: { temperature: 20 + (i % 13) / 3, humidity: 40 + (i % 7), battery: 90 - (i % 50) },
      meta: { fw_ver: '1.4.2' },
      source: 'mqtt',
    })
    lines.push(`${deviceId}\t${v.toString('base64')}`)
  }
  writeFileSync(file, `${lines.join('\n')}\n`)
  const valueBytes = Math.round(lines.reduce((a, l) => a + l.length - l.indexOf('\t') - 1, 0) / N)

  const clients = ['kcat', 'kafkajs', 'platformatic', 'confluent'].filter(
    (c) => (c !== 'kcat' || kcatAvailable()) && (c !== 'confluent' || confluentAvailable()),
  )
  const skipped = ['kcat', 'confluent'].filter((c) => !clients.includes(c))
  for (const s of skipped) process.stderr.write(`skipping ${s}: not installed (see README, Benchmarks)\n`)

  const log = testKafkaLog()
  const admin = await log.admin()
  const results: PhaseResult[] = []
  try {
    for (const client of clients) {
      const topic = `bench.clients.${client}.${Date.now()}`
      await admin.ensureTopics([{ name: topic, partitions: PARTITIONS, replicationFactor: 1 }])
      for (const phase of ['produce', 'consume'] as const) {
        const b0 = brokerCpuS()
        const r = runPhase(client, phase, topic, file)
        const brokerS = brokerCpuS() - b0
        if (phase === 'produce') {
          const ends = await admin.endOffsets(topic)
          const written = [...ends.values()].reduce((a, o) => a + Number(o), 0)
          if (written !== N) throw new Error(`${client} produced ${written} records, expected ${N}`)
        } else if (r.messages < N) {
          throw new Error(`${client} consumed ${r.messages} records, expected ${N}`)
        }
        const res: PhaseResult = {
          bench: 'kafka-clients',
          client,
          phase,
          messages: N,
          wallS: +r.wallS.toFixed(3),
          msgsPerS: Math.round(N / r.wallS),
          clientCpuS: +r.cpuS.toFixed(3),
          brokerCpuS: +brokerS.toFixed(3),
          msgsPerCpuS: Math.round(N / (r.cpuS + brokerS)),
        }
        results.push(res)
        process.stdout.write(`${JSON.stringify(res)}\n`)
      }
      await admin.deleteTopics([topic])
    }
  } finally {
    await admin.close()
    await log.close()
  }

  const ratio = (client: string, phase: string, of: 'msgsPerS' | 'msgsPerCpuS') => {
    const a = results.find((r) => r.client === client && r.phase === phase)
    const base = results.find((r) => r.client === 'kafkajs' && r.phase === phase)
    return a && base ? +(a[of] / base[of]).toFixed(2) : null
  }
  const summary = {
    bench: 'kafka-clients',
    commit: execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim(),
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    broker: 'Apache Kafka 4.4.0, one KRaft node on the same machine',
    messages: N,
    devices: DEVICES,
    partitions: PARTITIONS,
    valueBytes,
    produce:
      'acks=all, idempotent, sends of 1,000 records; 4 sends in flight (kafkajs and confluent queue them per broker), 1 for platformatic (its idempotent producer fails overlapping sends with OUT_OF_ORDER_SEQUENCE_NUMBER)',
    consume: 'a new consumer group from the earliest offset until all records arrived (kcat: no group, -e)',
    skipped,
    results,
    ratiosToKafkajs: Object.fromEntries(
      clients
        .filter((c) => c !== 'kafkajs')
        .map((c) => [
          c,
          {
            produceMsgsPerS: ratio(c, 'produce', 'msgsPerS'),
            consumeMsgsPerS: ratio(c, 'consume', 'msgsPerS'),
            produceMsgsPerCpuS: ratio(c, 'produce', 'msgsPerCpuS'),
            consumeMsgsPerCpuS: ratio(c, 'consume', 'msgsPerCpuS'),
          },
        ]),
    ),
  }
  mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true })
  writeFileSync(path.join(ROOT, 'bench/results/kafka-clients.json'), `${JSON.stringify(summary, null, 2)}\n`)
  process.stdout.write(`${JSON.stringify({ bench: 'kafka-clients', summary: summary.ratiosToKafkajs })}\n`)
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
