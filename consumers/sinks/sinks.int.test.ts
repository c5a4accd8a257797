import { Client } from 'cassandra-driver'
import { Pool } from 'pg'
import { LocalSchemaRegistry } from '../../core/envelope/registry'
import { createTelemetryCodec, type Telemetry } from '../../core/envelope/telemetry'
import type { KafkaEventLog } from '../../core/kafka/kafkajs-log'
import { collect, testKafkaLog, testLogger } from '../../test/kafka'
import { serverEnv, uniqueName } from '../../test/servers'
import { cassandraSink } from './cassandra'
import { postgresSink } from './postgres'
import { runSink } from './runtime'
import type { Sink } from './sink'

/** One store under test: a sink on a fresh table/keyspace, a row count, a reading it refuses, cleanup. */
interface Store {
  open(name: string): Promise<{
    sink: () => Sink
    count: () => Promise<number>
    /** A reading that passes Avro but the database refuses, and the error text to expect. */
    poison: (r: Telemetry) => Telemetry
    refusal: RegExp
    drop: () => Promise<void>
  }>
}

const postgres: Store = {
  async open(name) {
    const url = serverEnv().FS_POSTGRES_URL
    const pool = new Pool({ connectionString: url, max: 2 })
    return {
      sink: () => postgresSink({ connectionString: url, table: name }),
      count: async () => Number((await pool.query(`SELECT count(*) AS n FROM ${name}`)).rows[0].n),
      poison: (r) => ({ ...r, deviceId: 'bad\u0000device' }), // NUL is not allowed in text
      refusal: /SQLSTATE 22021/,
      drop: async () => {
        await pool.query(`DROP TABLE IF EXISTS ${name}`)
        await pool.end()
      },
    }
  },
}

const cassandra: Store = {
  async open(name) {
    const contactPoints = [serverEnv().FS_CASSANDRA_CONTACT_POINTS]
    const options = { contactPoints, localDataCenter: 'datacenter1' }
    const client = new Client(options)
    await client.connect()
    return {
      sink: () => cassandraSink({ client: options, keyspace: name, concurrency: 32 }),
      count: async () =>
        Number(
          (await client.execute(`SELECT count(*) AS n FROM ${name}.telemetry_by_device_day`))
            .first()
            .get('n'),
        ),
      poison: (r) => ({ ...r, deviceId: '' }), // the sink refuses an empty device id
      refusal: /cassandra: a reading with an empty device id/,
      drop: async () => {
        await client.execute(`DROP KEYSPACE IF EXISTS ${name}`)
        await client.shutdown()
      },
    }
  },
}

describe.each([
  ['postgres [kafka] [postgres]', postgres, 50],
  ['cassandra [kafka] [cassandra]', cassandra, 20],
])('consumers > sinks > %s', (_title, store, perDevice) => {
  let log: KafkaEventLog
  beforeAll(() => {
    log = testKafkaLog()
  })
  afterAll(async () => {
    await log?.close()
  })

  it('writes every reading once: exact rows, a replay adds none, a refused record is dead-lettered and the rest written', async () => {
    const id = uniqueName('sink')
    const name = id
      .toLowerCase()
      .replace(/[^a-z0-9_]/g, '_')
      .slice(0, 40)
    const topic = `${id}.telemetry`
    const dlq = `${id}.dlq`
    const admin = await log.admin()
    await admin.ensureTopics([
      { name: topic, partitions: 3, replicationFactor: 1 },
      { name: dlq, partitions: 1, replicationFactor: 1 },
    ])
    await admin.close()
    const db = await store.open(name)
    const telemetry = await createTelemetryCodec(new LocalSchemaRegistry())
    const T = Date.UTC(2026, 10, 1, 23, 59) // crosses midnight: two day partitions per device
    const reading = (d: number, i: number): Telemetry => ({
      deviceId: `dev-${d}`,
      tenant: 'acme',
      ts: T + i * 1000,
      receivedAt: T + i * 1000 + 5,
      seq: i,
      metrics: { temperature: 20 + (i % 10), ok: true, state: 'run' },
      meta: { fw: '1.2' },
      source: 'mqtt',
    })
    const readings = Array.from({ length: 100 }, (_, d) =>
      Array.from({ length: perDevice }, (_, i) => reading(d, i)),
    ).flat()
    const half = readings.length / 2
    const producer = await log.producer()
    await producer.send([
      ...readings.slice(0, half).map((r) => ({ topic, key: r.deviceId, value: telemetry.encode(r) })),
      { topic, key: 'dev-7', value: telemetry.encode(db.poison(reading(7, 999))) },
      { topic, key: 'dev-8', value: Buffer.from('not an envelope') },
      ...readings.slice(half).map((r) => ({ topic, key: r.deviceId, value: telemetry.encode(r) })),
    ])
    await producer.close()
    const run = async () => {
      const s = await runSink(log, db.sink(), {
        groupId: uniqueName('sink'),
        topic,
        deadletterTopic: dlq,
        telemetry,
        retry: { maxAttempts: 3, initialBackoffMs: 10, maxBackoffMs: 50 },
        logger: testLogger('sinks'),
      })
      for (let i = 0; i < 600 && (await db.count().catch(() => 0)) < readings.length; i++)
        await new Promise((r) => setTimeout(r, 100))
      await new Promise((r) => setTimeout(r, 1_000))
      await s.close()
    }
    try {
      await run()
      expect(await db.count()).toBe(readings.length)
      const dead = await collect(log, { groupId: uniqueName('dlq'), topics: [dlq] }, (rs) => rs.length >= 2)
      expect(dead.map((r) => r.headers['fs-reason-code']!.toString()).sort()).toEqual([
        'FS_SINK_DECODE',
        'FS_SINK_WRITE',
      ])
      const refused = dead.find((r) => r.headers['fs-reason-code']!.toString() === 'FS_SINK_WRITE')!
      expect(refused.headers['fs-reason']!.toString()).toMatch(db.refusal)
      // The whole topic again through a new group (a replay): no new rows.
      await run()
      expect(await db.count()).toBe(readings.length)
    } finally {
      await db.drop()
    }
  })
})
