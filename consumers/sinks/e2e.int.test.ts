import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { Client } from 'cassandra-driver'
import { Pool } from 'pg'
import { LocalSchemaRegistry } from '../../core/envelope/registry'
import { createTelemetryCodec } from '../../core/envelope/telemetry'
import type { KafkaEventLog } from '../../core/kafka/kafkajs-log'
import type { Telemetry } from '../../schemas/types.generated'
import { testKafkaLog } from '../../test/kafka'
import { serverEnv, uniqueName } from '../../test/servers'

const DEVICES = 500
const PER_DEVICE = 100 // 50,000 envelopes
const TOTAL = DEVICES * PER_DEVICE

/** A `fleetstream sink <store>` process; resolves once it is running. */
function startSink(store: string, env: Record<string, string>): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [path.resolve(__dirname, '../../bin/fleetstream.js'), 'sink', store], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    p.stdout!.on('data', (c: Buffer) => {
      if (c.toString().includes('"event":"running"')) resolve(p)
    })
    p.once('exit', (code, signal) => reject(new Error(`sink ${store} exited with ${code ?? signal}`)))
  })
}
const kill9 = (p: ChildProcess) => new Promise<void>((r) => (p.once('exit', () => r()), p.kill('SIGKILL')))
const stop = (p: ChildProcess) => new Promise<void>((r) => (p.once('exit', () => r()), p.kill('SIGTERM')))

async function until(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms
  while (!(await check().catch(() => false))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

describe('consumers > sinks > end to end [kafka] [postgres] [cassandra]', () => {
  let log: KafkaEventLog
  beforeAll(() => {
    log = testKafkaLog()
  })
  afterAll(async () => {
    await log?.close()
  })

  it('50,000 envelopes → exact rows in PostgreSQL and Cassandra, through a kill -9 of each sink; a replay adds none', async () => {
    const id = uniqueName('e2e')
    const name = id
      .toLowerCase()
      .replace(/[^a-z0-9_]/g, '_')
      .slice(0, 40)
    const topic = `${id}.enriched`
    const dlq = `${id}.dlq`
    const admin = await log.admin()
    await admin.ensureTopics([
      { name: topic, partitions: 6, replicationFactor: 1 },
      { name: dlq, partitions: 1, replicationFactor: 1 },
    ])
    await admin.close()
    const codec = await createTelemetryCodec(new LocalSchemaRegistry())
    const T = Date.UTC(2026, 10, 25, 12)
    const producer = await log.producer()
    for (let d = 0; d < DEVICES; d += 50) {
      const batch: Telemetry[] = []
      for (let k = d; k < d + 50; k++)
        for (let i = 0; i < PER_DEVICE; i++)
          batch.push({
            deviceId: `e2e-${k}`,
            tenant: null,
            ts: T + i * 5000,
            receivedAt: T + i * 5000 + 2,
            seq: i,
            metrics: { temperature: 20 + (i % 7), humidity: 40 + (k % 9) },
            meta: {},
            source: 'mqtt',
          })
      await producer.send(batch.map((r) => ({ topic, key: r.deviceId, value: codec.encode(r) })))
    }
    await producer.close()

    const s = serverEnv()
    const pool = new Pool({ connectionString: s.FS_POSTGRES_URL, max: 1, options: `-c search_path=${name}` })
    const cass = new Client({
      contactPoints: [s.FS_CASSANDRA_CONTACT_POINTS],
      localDataCenter: 'datacenter1',
    })
    const counts: Record<string, () => Promise<number>> = {
      postgres: async () => Number((await pool.query('SELECT count(*) AS n FROM telemetry')).rows[0].n),
      cassandra: async () =>
        Number(
          (
            await cass.execute(`SELECT count(*) AS n FROM ${name}.telemetry_by_device_day`, [], {
              readTimeout: 60_000,
            })
          )
            .first()
            .get('n'),
        ),
    }
    const env = (group: string): Record<string, string> => ({
      PATH: process.env.PATH!,
      FLEETSTREAM_KAFKA__BROKERS: s.FS_KAFKA_BROKERS,
      FLEETSTREAM_KAFKA__SESSION_TIMEOUT_MS: '8000',
      FLEETSTREAM_TOPICS__ENRICHED: topic,
      FLEETSTREAM_TOPICS__DEADLETTER: dlq,
      FLEETSTREAM_SINKS__APPLICATION_ID: group,
      FLEETSTREAM_SINKS__STORE: 'telemetry',
      FLEETSTREAM_SINKS__POSTGRES__URL: s.FS_POSTGRES_URL,
      FLEETSTREAM_SINKS__POSTGRES__SCHEMA: name,
      FLEETSTREAM_SINKS__CASSANDRA__CONTACT_POINTS: s.FS_CASSANDRA_CONTACT_POINTS,
      FLEETSTREAM_SINKS__CASSANDRA__KEYSPACE: name,
      FLEETSTREAM_SINKS__METRICS__PORT: '0',
      FLEETSTREAM_LOG__LEVEL: 'warn',
    })
    try {
      await cass.connect()
      const group = uniqueName('sinks')
      await Promise.all(
        (['postgres', 'cassandra'] as const).map(async (store) => {
          // Killed once some rows are in, and again later: the restarts continue from the commits.
          let p = await startSink(store, env(group))
          for (const at of [TOTAL / 5, TOTAL / 2]) {
            await until(`${store} to pass ${at} rows`, async () => (await counts[store]!()) >= at, 180_000)
            await kill9(p)
            p = await startSink(store, env(group))
          }
          await until(
            `${store} to hold ${TOTAL} rows`,
            async () => (await counts[store]!()) >= TOTAL,
            300_000,
          )
          await stop(p)
          expect([store, await counts[store]!()]).toEqual([store, TOTAL])
        }),
      )
      // A replay: a new group reads the whole topic again; the idempotency key absorbs it.
      const replay = uniqueName('replay')
      const ps = await Promise.all(['postgres', 'cassandra'].map((store) => startSink(store, env(replay))))
      const lag = async () => {
        const a = await log.admin()
        try {
          const committed = await a.committedOffsets(`${replay}-sink-postgres`, topic)
          const committed2 = await a.committedOffsets(`${replay}-sink-cassandra`, topic)
          const ends = await a.endOffsets(topic)
          return [...ends].every(([p, end]) => committed.get(p) === end && committed2.get(p) === end)
        } finally {
          await a.close()
        }
      }
      await until('the replay to reach the end of the topic', lag, 300_000)
      await Promise.all(ps.map(stop))
      expect([await counts.postgres!(), await counts.cassandra!()]).toEqual([TOTAL, TOTAL])
    } finally {
      await pool.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`).catch(() => {})
      await pool.end()
      await cass.execute(`DROP KEYSPACE IF EXISTS ${name}`).catch(() => {})
      await cass.shutdown()
    }
  }, 900_000)
})
