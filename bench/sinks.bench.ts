/**
 * Sink and query API benchmark, on the real servers (scripts/servers.sh).
 *
 *   npm run bench:sinks     (BENCH_DEVICES=1000, BENCH_PER_DEVICE=200, BENCH_API_REQUESTS=200,
 *                            BENCH_REPEAT=5 PostgreSQL rounds;
 *                            BENCH_ONLY=postgres,cassandra,api runs a part and writes no results)
 *
 * 1. PostgreSQL: `fleetstream sink postgres` stores BENCH_DEVICES × BENCH_PER_DEVICE readings
 *    from Kafka (from its first to its last committed offset), beside PostgreSQL's own bulk
 *    path, `COPY … FROM` (psql `\copy`) of the same rows into the same table, in the same run.
 * 2. Cassandra: `fleetstream sink cassandra` beside Cassandra's own Java driver (from the
 *    cassandra-all distribution) writing the same rows with the same prepared INSERT and the same
 *    requests in flight (bench/peers/cassandra-writer; cassandra-stress is not on Maven Central).
 * 3. Query API: 30 days of one device at one reading per 5 s (518,400 rows) in each store; p50/p99
 *    of `GET /v1/devices/:id/series` over a random 24-hour range at 1-minute avg, over HTTP.
 *
 * Ratios are rows/s of fleetstream ÷ rows/s of the store's own tool (both wall-clock over the
 * same rows on the same 2 cores); CPU-seconds of the writing client process are reported beside.
 * One JSON object per line on stdout; bench/results/sink-postgres.json, sink-cassandra.json and
 * api.json get the results.
 */
import { execFileSync, spawn } from 'node:child_process'
import { mkdirSync, writeFileSync, createWriteStream } from 'node:fs'
import path from 'node:path'
import { Pool } from 'pg'
import { Client } from 'cassandra-driver'
import { cassandraReadStore } from '../api/cassandra-store'
import { ApiKeyStore } from '../api/keys'
import { buildApi } from '../api/server'
import { sqlReadStore } from '../api/sql-store'
import type { ReadStore } from '../api/store'
import { cassandraSink } from '../consumers/sinks/cassandra'
import { postgresExecutor, postgresSink } from '../consumers/sinks/postgres'
import { postgresDialect } from '../consumers/sinks/sql/dialect'
import { LocalSchemaRegistry } from '../core/envelope/registry'
import { createTelemetryCodec, type Telemetry } from '../core/envelope/telemetry'
import { testKafkaLog, testLogger } from '../test/kafka'
import { serverEnv } from '../test/servers'
import { useCompiledBuild } from './lib/build'
import { benchKafka, createBenchTopics, groupStable } from './lib/kafka'
import { cpuOfPid, cpuOfTree, median, pct, reapOnExit, serverPid } from './lib/proc'

const ROOT = path.resolve(__dirname, '..')
const D = Number(process.env.BENCH_DEVICES ?? 1000)
const PER = Number(process.env.BENCH_PER_DEVICE ?? 200)
const N = D * PER
const API_REQUESTS = Number(process.env.BENCH_API_REQUESTS ?? 200)
const REPEAT = Number(process.env.BENCH_REPEAT ?? 5)
const CONCURRENCY = 64
const ONLY = process.env.BENCH_ONLY?.split(',')
const runs = (part: string) => !ONLY || ONLY.includes(part)
const RUN = `bs${Date.now().toString(36)}`
const T0 = Date.UTC(2026, 9, 1)
const API_T0 = Date.UTC(2026, 8, 1)
const API_DAYS = 30
const API_ROWS = (API_DAYS * 86_400_000) / 5000
const WORK = path.join(ROOT, 'bench/.work/sinks')
const out = (o: object) => process.stdout.write(`${JSON.stringify({ bench: 'sinks', ...o })}\n`)
const env = serverEnv()
const kafka = benchKafka('bench-sinks')

/** The benchmark's rows — the same formula as the Java peer's (Writer.java). */
function reading(d: number, i: number, t0 = T0): Telemetry {
  const ts = t0 + i * 5000
  return {
    deviceId: `bench-${d}`,
    tenant: null,
    ts,
    receivedAt: ts + 2,
    seq: i,
    metrics: { temperature: 20 + (i % 7), humidity: 40 + (d % 9) },
    meta: {},
    source: 'mqtt',
  }
}

/** Rows as CSV for COPY (NULL tenant is an empty unquoted field). */
async function writeCsv(file: string, devices: number, per: number, t0: number): Promise<void> {
  const w = createWriteStream(file)
  for (let i = 0; i < per; i++) {
    let chunk = ''
    for (let d = 0; d < devices; d++) {
      const r = reading(d, i, t0)
      chunk += `${r.deviceId},${new Date(r.ts).toISOString()},${r.seq},,${new Date(r.receivedAt).toISOString()},mqtt,"${JSON.stringify(r.metrics).replaceAll('"', '""')}",{}\n`
    }
    if (!w.write(chunk)) await new Promise<void>((r) => w.once('drain', () => r()))
  }
  await new Promise<void>((r, j) => w.end((e?: Error | null) => (e ? j(e) : r())))
}

const COPY_COLUMNS = 'device_id, ts, seq, tenant, received_at, source, metrics, meta'

function psqlCopy(schema: string, file: string): number {
  const start = process.hrtime.bigint()
  execFileSync('psql', [
    env.FS_POSTGRES_URL,
    '-v',
    'ON_ERROR_STOP=1',
    '-q',
    '-c',
    `SET search_path = ${schema}`,
    '-c',
    `\\copy telemetry (${COPY_COLUMNS}) FROM '${file}' WITH (FORMAT csv)`,
  ])
  return Number(process.hrtime.bigint() - start) / 1e9
}

function javaPeer(
  keyspace: string,
  devices: number,
  per: number,
  t0: number,
): { seconds: number; rows_per_s: number } {
  const [host, port] = env.FS_CASSANDRA_CONTACT_POINTS.split(':')
  const line = execFileSync(
    'java',
    [
      '-Dlogback.configurationFile=/nonexistent',
      '-cp',
      `${env.FS_CASSANDRA_LIB}/*`,
      path.join(ROOT, 'bench/peers/cassandra-writer/Writer.java'),
      host!,
      port!,
      keyspace,
      String(devices),
      String(per),
      String(t0),
      String(CONCURRENCY),
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 * 1024 * 1024 },
  )
    .split('\n')
    .find((l) => l.startsWith('{"rows"'))
  if (!line) throw new Error('the Cassandra peer printed no result')
  return JSON.parse(line) as { seconds: number; rows_per_s: number }
}

/** Runs `fleetstream sink <store>` over the topic until it has committed every offset. */
async function fleetstreamSink(store: string, topic: string, extra: Record<string, string>, appId = RUN) {
  const group = `${appId}-sink-${store}` // the sink's group: <applicationId>-sink-<store>
  // BENCH_PROFILE=1: a CPU profile of the sink process in bench/.work/sink-profile.
  const prof =
    process.env.BENCH_PROFILE === '1'
      ? ['--cpu-prof', `--cpu-prof-dir=${path.join(ROOT, 'bench/.work/sink-profile')}`]
      : []
  const proc = reapOnExit(
    spawn(process.execPath, [...prof, path.join(ROOT, 'bin/fleetstream.js'), 'sink', store], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: {
        ...process.env,
        FLEETSTREAM_KAFKA__BROKERS: env.FS_KAFKA_BROKERS,
        FLEETSTREAM_TOPICS__ENRICHED: topic,
        FLEETSTREAM_TOPICS__DEADLETTER: `${RUN}.dlq`,
        FLEETSTREAM_SINKS__APPLICATION_ID: appId,
        FLEETSTREAM_SINKS__STORE: 'telemetry',
        FLEETSTREAM_SINKS__METRICS__PORT: '0',
        FLEETSTREAM_LOG__LEVEL: 'warn',
        ...extra,
      },
    }),
  )
  const exited = new Promise<never>((_, reject) =>
    proc.once('exit', (code) => reject(new Error(`sink ${store} exited with ${code}`))),
  )
  // From the moment its consumer group has its partitions (it fetches from then on) to the last
  // committed offset: start-up, migrations and the group join are not counted; every batch is.
  exited.catch(() => undefined) // a rejection after the end (SIGTERM below) is expected
  const admin = kafka.admin()
  await admin.connect()
  await Promise.race([groupStable(kafka, group), exited])
  const first = process.hrtime.bigint()
  const cpu0 = cpuOfPid(proc.pid!)
  for (;;) {
    const [t] = await Promise.race([admin.fetchOffsets({ groupId: group, topics: [topic] }), exited])
    const done = (t?.partitions ?? []).reduce((a, p) => a + Math.max(0, Number(p.offset)), 0)
    if (done >= N) break
    await new Promise((r) => setTimeout(r, 20))
  }
  await admin.disconnect()
  const seconds = Number(process.hrtime.bigint() - first) / 1e9
  const cpu = cpuOfPid(proc.pid!) - cpu0
  await new Promise<void>((r) => (proc.once('exit', () => r()), proc.kill('SIGTERM')))
  return { seconds, rows_per_s: N / seconds, cpu_s: cpu }
}

async function apiLatency(
  store: ReadStore,
): Promise<{ p50_ms: number | null; p99_ms: number | null; points: number }> {
  const keys = new ApiKeyStore(path.join(WORK, `keys-${store.name}.json`))
  const key = keys.add('bench', ['read']).key
  const { app } = await buildApi({
    store,
    keys,
    logger: testLogger('bench'),
    limits: { maxRangeMs: 31 * 86_400_000, maxRows: 10_000, maxPoints: 10_000 },
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const times: number[] = []
  let points = 0
  for (let i = 0; i < API_REQUESTS + 10; i++) {
    const from = API_T0 + Math.floor(Math.random() * (API_DAYS - 1) * 24) * 3_600_000
    const t = process.hrtime.bigint()
    const res = await fetch(
      `${base}/v1/devices/bench-0/series?metric=temperature&from=${from}&to=${from + 86_400_000}&interval=1m&agg=avg`,
      { headers: { Authorization: `Bearer ${key}` } },
    )
    const body = (await res.json()) as { points: unknown[] }
    if (res.status !== 200) throw new Error(`API answered ${res.status}`)
    if (i >= 10) times.push(Number(process.hrtime.bigint() - t) / 1e6) // 10 warm-up requests
    points = body.points.length
  }
  await app.close()
  return { p50_ms: pct(times, 50), p99_ms: pct(times, 99), points }
}

async function main(): Promise<void> {
  const build = useCompiledBuild()
  execFileSync('bash', [path.join(ROOT, 'scripts/servers.sh'), 'start', 'kafka', 'postgres', 'cassandra'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  mkdirSync(WORK, { recursive: true })
  const topic = `${RUN}.enriched`
  await createBenchTopics(kafka, 6, [{ name: topic }, { name: `${RUN}.dlq` }])
  const codec = await createTelemetryCodec(new LocalSchemaRegistry())
  const log = testKafkaLog()
  const producer = await log.producer()
  for (let i = 0; i < PER; i += 10) {
    const batch: { topic: string; key: string; value: Buffer }[] = []
    for (let k = i; k < Math.min(PER, i + 10); k++)
      for (let d = 0; d < D; d++) {
        const r = reading(d, k)
        batch.push({ topic, key: r.deviceId, value: codec.encode(r) })
      }
    await producer.send(batch)
  }
  await producer.close()
  await log.close()
  out({ event: 'input ready', rows: N, topic })

  const schemas = { fs: `${RUN}_fs`, copy: `${RUN}_copy`, api: `${RUN}_api` }
  const extraSchemas: string[] = []
  for (const s of Object.values(schemas)) {
    const sink = postgresSink({ connectionString: env.FS_POSTGRES_URL, schema: s })
    await sink.connect()
    await sink.close()
  }
  const keyspaces = { fs: `${RUN}_fs`, peer: `${RUN}_peer`, api: `${RUN}_api` }
  const cassClient = { contactPoints: [env.FS_CASSANDRA_CONTACT_POINTS], localDataCenter: 'datacenter1' }
  for (const k of Object.values(keyspaces)) {
    const sink = cassandraSink({ client: cassClient, keyspace: k })
    await sink.connect()
    await sink.close()
  }

  const pool = new Pool({ connectionString: env.FS_POSTGRES_URL, max: 1 })
  const cass = new Client(cassClient)
  const results: Record<string, object> = {}

  if (runs('postgres')) {
    // REPEAT rounds, each: COPY of the CSV (written before any clock starts), then fleetstream,
    // each into fresh tables after a CHECKPOINT (so neither pays for the other's dirty pages);
    // the ratio is of the medians. CPU-seconds of PostgreSQL (all its processes) and of the
    // Kafka broker are measured over each phase.
    const csv = path.join(WORK, 'rows.csv')
    await writeCsv(csv, D, PER, T0)
    const pg = serverPid('postgres')
    const broker = serverPid('kafka')
    const pgRows = async (s: string) =>
      Number((await pool.query(`SELECT count(*) AS n FROM ${s}.telemetry`)).rows[0].n)
    const fsRuns: { seconds: number; cpu_s: number; server_cpu_s: number; kafka_cpu_s: number }[] = []
    const copyRuns: { seconds: number; server_cpu_s: number }[] = []
    for (let round = 0; round < REPEAT; round++) {
      const copySchema = `${schemas.copy}_${round}`
      const fsSchema = `${schemas.fs}_${round}`
      extraSchemas.push(copySchema, fsSchema)
      for (const schema of [copySchema, fsSchema]) {
        const sink = postgresSink({ connectionString: env.FS_POSTGRES_URL, schema })
        await sink.connect()
        await sink.close()
        // No autovacuum on the bench tables: its ANALYZE of one phase's table would land in the
        // next phase's measurement (and compete for the same 2 cores).
        for (const t of ['telemetry', 'devices'])
          await pool.query(`ALTER TABLE ${schema}.${t} SET (autovacuum_enabled = false)`)
      }
      await pool.query('CHECKPOINT')
      const pgCpu0 = cpuOfTree(pg)
      const copySeconds = psqlCopy(copySchema, csv)
      copyRuns.push({ seconds: copySeconds, server_cpu_s: +(cpuOfTree(pg) - pgCpu0).toFixed(2) })
      if ((await pgRows(copySchema)) !== N) throw new Error('COPY stored a wrong row count')
      await pool.query('CHECKPOINT')
      const pgCpu1 = cpuOfTree(pg)
      const brokerCpu1 = cpuOfPid(broker)
      const r = await fleetstreamSink(
        'postgres',
        topic,
        {
          FLEETSTREAM_SINKS__POSTGRES__URL: env.FS_POSTGRES_URL,
          FLEETSTREAM_SINKS__POSTGRES__SCHEMA: fsSchema,
        },
        `${RUN}r${round}`,
      )
      fsRuns.push({
        seconds: r.seconds,
        cpu_s: +r.cpu_s.toFixed(2),
        server_cpu_s: +(cpuOfTree(pg) - pgCpu1).toFixed(2),
        kafka_cpu_s: +(cpuOfPid(broker) - brokerCpu1).toFixed(2),
      })
      if ((await pgRows(fsSchema)) !== N) throw new Error('fleetstream stored a wrong row count')
      out({ event: 'postgres round', round, fleetstream: fsRuns[round], copy: copyRuns[round] })
    }
    const med = <T>(xs: T[], f: (x: T) => number) => median(xs.map(f))
    const fleetstream = {
      seconds: med(fsRuns, (x) => x.seconds),
      rows_per_s: Math.round(N / med(fsRuns, (x) => x.seconds)),
      cpu_s: med(fsRuns, (x) => x.cpu_s),
      server_cpu_s: med(fsRuns, (x) => x.server_cpu_s),
      kafka_cpu_s: med(fsRuns, (x) => x.kafka_cpu_s),
      rows_stored: N,
      rounds: fsRuns,
    }
    const copy = {
      seconds: med(copyRuns, (x) => x.seconds),
      rows_per_s: Math.round(N / med(copyRuns, (x) => x.seconds)),
      server_cpu_s: med(copyRuns, (x) => x.server_cpu_s),
      rows_stored: N,
      rounds: copyRuns,
    }
    results['sink-postgres'] = {
      bench: 'sink-postgres',
      ratio: +(fleetstream.rows_per_s / copy.rows_per_s).toFixed(3),
      goal: 0.8,
      rows: N,
      rounds: REPEAT,
      fleetstream,
      copy,
      command: 'npm run bench:sinks',
      note: 'Medians of alternating rounds (CHECKPOINT before each phase, fresh tables). fleetstream: Kafka → binary COPY FROM STDIN per batch, Avro transcoded straight into COPY tuples (falling back to avsc decode and INSERT … ON CONFLICT DO NOTHING when a key is already stored) + last-seen upsert, committed after each write, 2 partitions at once (sinks.concurrency default); peer: psql \\copy of the same rows (CSV file) into the same table. cpu_s is the sink process, server_cpu_s all PostgreSQL processes, kafka_cpu_s the broker (from the sink start).',
    }
    out(results['sink-postgres'])
  }

  if (runs('cassandra')) {
    // The Java driver peer, then fleetstream.
    const peer = javaPeer(keyspaces.peer, D, PER, T0)
    const cFs = await fleetstreamSink('cassandra', topic, {
      FLEETSTREAM_SINKS__CASSANDRA__CONTACT_POINTS: env.FS_CASSANDRA_CONTACT_POINTS,
      FLEETSTREAM_SINKS__CASSANDRA__KEYSPACE: keyspaces.fs,
      FLEETSTREAM_SINKS__CASSANDRA__CONCURRENCY: String(CONCURRENCY),
    })
    const cRows = async (k: string) =>
      Number(
        (
          await cass.execute(`SELECT count(*) AS n FROM ${k}.telemetry_by_device_day`, [], {
            readTimeout: 120_000,
          })
        )
          .first()
          .get('n'),
      )
    results['sink-cassandra'] = {
      bench: 'sink-cassandra',
      ratio: +(cFs.rows_per_s / peer.rows_per_s).toFixed(3),
      goal: 0.8,
      rows: N,
      fleetstream: { ...cFs, rows_stored: await cRows(keyspaces.fs) },
      java_driver: { ...peer, rows_stored: await cRows(keyspaces.peer) },
      concurrency: CONCURRENCY,
      command: 'npm run bench:sinks',
      note: "fleetstream: Kafka → Avro decode → prepared INSERTs, 64 in flight (p-queue), committed after each batch; peer: Cassandra's own Java driver (cassandra-all lib/) with the same INSERT and 64 in flight, timed from its first request (JVM warm-up included). cassandra-stress is not published to Maven Central.",
    }
    out(results['sink-cassandra'])
  }

  if (runs('api')) {
    // 30 days of one device in each store.
    const apiCsv = path.join(WORK, 'api.csv')
    await writeCsv(apiCsv, 1, API_ROWS, API_T0)
    psqlCopy(schemas.api, apiCsv)
    javaPeer(keyspaces.api, 1, API_ROWS, API_T0)
    const pgStore = sqlReadStore(
      'postgres',
      postgresDialect,
      postgresExecutor(
        new Pool({ connectionString: env.FS_POSTGRES_URL, max: 4, options: `-c search_path=${schemas.api}` }),
      ),
    )
    const cStore = cassandraReadStore({ client: cassClient, keyspace: keyspaces.api })
    results.api = {
      bench: 'api',
      query: 'GET /v1/devices/bench-0/series?metric=temperature&interval=1m&agg=avg over a random 24 h',
      data: `${API_ROWS} readings of one device over ${API_DAYS} days`,
      requests: API_REQUESTS,
      postgres: await apiLatency(pgStore),
      cassandra: await apiLatency(cStore),
      command: 'npm run bench:sinks',
    }
    out(results.api)
    await pgStore.close()
    await cStore.close()
  }

  for (const s of [...Object.values(schemas), ...extraSchemas])
    await pool.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`)
  for (const k of Object.values(keyspaces)) await cass.execute(`DROP KEYSPACE IF EXISTS ${k}`)
  await pool.end()
  await cass.shutdown()
  if (ONLY) return // a partial run is for trying things: it leaves the committed results alone
  const at = new Date().toISOString()
  for (const [file, r] of Object.entries(results))
    writeFileSync(
      path.join(ROOT, `bench/results/${file}.json`),
      `${JSON.stringify({ ...r, ...build, at }, null, 2)}\n`,
    )
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${(err as Error).stack}\n`)
    process.exit(1)
  },
)
