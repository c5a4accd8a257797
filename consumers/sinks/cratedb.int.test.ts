import { LocalSchemaRegistry } from '../../core/envelope/registry'
import type { KafkaEventLog } from '../../core/kafka/kafkajs-log'
import type { Telemetry } from '../../schemas/types.generated'
import { testKafkaLog, testLogger } from '../../test/kafka'
import { uniqueName } from '../../test/servers'
import { sinkCodecs } from './cli'
import { crateExecutor, crateSink } from './cratedb'
import { runSink } from './runtime'

// CrateDB cannot be installed on the machines this project is built on (no package in the
// registries they reach), so this test runs only where CRATEDB_URL names a CrateDB server
// (its HTTP endpoint, e.g. http://127.0.0.1:4200). The SQL it runs is unit-tested in
// sql/dialect.test.ts either way.
const url = process.env.CRATEDB_URL
if (!url)
  process.stdout.write(
    'SKIPPED consumers/sinks/cratedb.int.test.ts: CRATEDB_URL is not set (CrateDB cannot be installed here; set it to a CrateDB HTTP endpoint to run)\n',
  )
const describeCrate = url ? describe : describe.skip

describeCrate('consumers > sinks > cratedb [kafka]', () => {
  let log: KafkaEventLog
  beforeAll(() => {
    log = testKafkaLog()
  })
  afterAll(async () => {
    await log?.close()
  })

  it('writes each reading once through _sql bulk_args; a replay adds none', async () => {
    const id = uniqueName('crate')
    const topic = `${id}.telemetry`
    const admin = await log.admin()
    await admin.ensureTopics([
      { name: topic, partitions: 2, replicationFactor: 1 },
      { name: `${id}.dlq`, partitions: 1, replicationFactor: 1 },
    ])
    await admin.close()
    const codecs = await sinkCodecs(new LocalSchemaRegistry())
    const T = Date.UTC(2026, 0, 31, 23, 59) // crosses a month: two partitions
    const readings: Telemetry[] = Array.from({ length: 500 }, (_, i) => ({
      deviceId: `crate-${id}-${i % 10}`,
      tenant: null,
      ts: T + i * 1000,
      receivedAt: T + i * 1000,
      seq: i,
      metrics: { temperature: i % 40 },
      meta: {},
      source: 'http',
    }))
    const producer = await log.producer()
    await producer.send(readings.map((r) => ({ topic, key: r.deviceId, value: codecs.telemetry.encode(r) })))
    await producer.close()
    const x = crateExecutor({ url: url! })
    const count = async () => {
      await x.query('REFRESH TABLE "telemetry"', [])
      const [row] = await x.query('SELECT count(*) AS n FROM "telemetry" WHERE "device_id" LIKE ?', [
        `crate-${id}-%`,
      ])
      return Number(row!.n)
    }
    for (let round = 0; round < 2; round++) {
      const s = await runSink(log, crateSink({ url: url! }), {
        groupId: uniqueName('crate'),
        inputs: [{ topic, kind: 'telemetry' }],
        deadletterTopic: `${id}.dlq`,
        codecs,
        retry: { maxAttempts: 3, initialBackoffMs: 10, maxBackoffMs: 50 },
        logger: testLogger('cratedb'),
      })
      for (let i = 0; i < 300 && (await count().catch(() => 0)) < readings.length; i++)
        await new Promise((r) => setTimeout(r, 100))
      await s.close()
      expect(await count()).toBe(readings.length)
    }
  })
})
