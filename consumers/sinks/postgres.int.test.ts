import { Pool } from 'pg'
import { LocalSchemaRegistry } from '../../core/envelope/registry'
import { createTelemetryCodec, type Telemetry } from '../../core/envelope/telemetry'
import type { KafkaEventLog } from '../../core/kafka/kafkajs-log'
import { collect, testKafkaLog, testLogger } from '../../test/kafka'
import { serverEnv, uniqueName } from '../../test/servers'
import { postgresSink } from './postgres'
import { runSink } from './runtime'

describe('consumers > sinks > postgres [kafka] [postgres]', () => {
  let log: KafkaEventLog
  let pool: Pool
  beforeAll(() => {
    log = testKafkaLog()
    pool = new Pool({ connectionString: serverEnv().FS_POSTGRES_URL, max: 2 })
  })
  afterAll(async () => {
    await pool?.end()
    await log?.close()
  })

  it('writes every reading once: exact rows, a replay adds none, a poison record is dead-lettered and the rest written', async () => {
    const id = uniqueName('sink')
    const table = id.toLowerCase().replace(/[^a-z0-9_]/g, '_')
    const topic = `${id}.telemetry`
    const dlq = `${id}.dlq`
    const admin = await log.admin()
    await admin.ensureTopics([
      { name: topic, partitions: 3, replicationFactor: 1 },
      { name: dlq, partitions: 1, replicationFactor: 1 },
    ])
    await admin.close()
    const telemetry = await createTelemetryCodec(new LocalSchemaRegistry())
    const T = Date.UTC(2026, 10, 1)
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
      Array.from({ length: 50 }, (_, i) => reading(d, i)),
    ).flat()
    // A reading PostgreSQL refuses (a NUL character in text), and bytes that are not an envelope.
    const poison = { ...reading(7, 999), deviceId: 'bad\u0000device' }
    const producer = await log.producer()
    await producer.send([
      ...readings.slice(0, 2500).map((r) => ({ topic, key: r.deviceId, value: telemetry.encode(r) })),
      { topic, key: 'dev-7', value: telemetry.encode(poison) },
      { topic, key: 'dev-8', value: Buffer.from('not an envelope') },
      ...readings.slice(2500).map((r) => ({ topic, key: r.deviceId, value: telemetry.encode(r) })),
    ])
    await producer.close()
    const count = async () => Number((await pool.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n)
    const run = async (groupId: string) => {
      const sink = postgresSink({ connectionString: serverEnv().FS_POSTGRES_URL, table })
      const written: number[] = []
      const s = await runSink(log, sink, {
        groupId,
        topic,
        deadletterTopic: dlq,
        telemetry,
        retry: { maxAttempts: 3, initialBackoffMs: 10, maxBackoffMs: 50 },
        logger: testLogger('sinks'),
        onWritten: (n) => written.push(n),
      })
      for (let i = 0; i < 300 && (await count().catch(() => 0)) < readings.length; i++)
        await new Promise((r) => setTimeout(r, 100))
      await new Promise((r) => setTimeout(r, 1_000))
      await s.close()
      return written
    }
    await run(uniqueName('sink-a'))
    expect(await count()).toBe(readings.length)
    const row = (await pool.query(`SELECT * FROM ${table} WHERE device_id = $1 AND seq = $2`, ['dev-3', 4]))
      .rows[0]
    expect(row).toMatchObject({
      tenant: 'acme',
      source: 'mqtt',
      metrics: { temperature: 24, ok: true, state: 'run' },
      meta: { fw: '1.2' },
    })
    expect(new Date(row.ts).getTime()).toBe(T + 4000)
    const dead = await collect(log, { groupId: uniqueName('dlq'), topics: [dlq] }, (rs) => rs.length >= 2)
    expect(dead.map((r) => r.headers['fs-reason-code']!.toString()).sort()).toEqual([
      'FS_SINK_DECODE',
      'FS_SINK_WRITE',
    ])
    expect(
      dead
        .find((r) => r.headers['fs-reason-code']!.toString() === 'FS_SINK_WRITE')!
        .headers['fs-reason']!.toString(),
    ).toMatch(/SQLSTATE 22021/)
    // The whole topic again through a new group: no new rows.
    await run(uniqueName('sink-b'))
    expect(await count()).toBe(readings.length)
    await pool.query(`DROP TABLE ${table}`)
  })
})
