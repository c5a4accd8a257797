import { kafkaConfig } from '../../core/config/schema'
import { KafkaEventLog } from '../../core/kafka/kafkajs-log'
import { collect, testLogger, within } from '../../test/kafka'
import { ownKafka } from '../../test/own-kafka'
import { uniqueName } from '../../test/servers'
import { counterJob } from '../testing/counter-job'
import { JobMetrics } from './metrics'
import { runJob } from './runner'

// A broker of this test's own, so stopping it disturbs no other test.
const broker = ownKafka('job-restart', 19492)

// The transactional producer keeps its coordinators between transactions (patches/kafkajs):
// after the broker comes back, the job must find them again and go on, exactly once.
describe('stream-jobs > runtime: the Kafka broker restarts mid-stream [kafka]', () => {
  let log: KafkaEventLog
  beforeAll(() => {
    broker.wipe()
    broker.start()
    log = new KafkaEventLog(
      kafkaConfig.parse({ brokers: broker.brokers, clientId: 'job-restart' }),
      testLogger('job-restart'),
    )
  })
  afterAll(async () => {
    await log?.close()
    broker.stop()
    broker.wipe()
  })

  // kafkajs leaves a transaction whose EndTxn failed in its COMMITTING state for good, and
  // refused every later transaction of that producer: a job whose commit met a broker restart
  // stopped making progress.
  it('a transactional producer whose commit failed while the broker was down commits again once it is back', async () => {
    const topic = uniqueName('restart-tx')
    const admin = await log.admin()
    await admin.ensureTopics([{ name: topic, partitions: 1, replicationFactor: 1 }])
    await admin.close()
    const producer = await log.transactionalProducer(`${topic}-p`)
    try {
      const first = await producer.begin()
      await first.send([{ topic, key: 'k', value: Buffer.from('lost') }])
      broker.stop()
      await expect(first.commit()).rejects.toThrow()
      await first.abort().catch(() => undefined)
      broker.start()
      const second = await within(
        (async () => {
          for (;;) {
            try {
              return await producer.begin()
            } catch (err) {
              // The coordinator may still be loading: retriable, and retried here as the runner would.
              if (!(err as { retriable?: boolean }).retriable) throw err
              await new Promise((r) => setTimeout(r, 500))
            }
          }
        })(),
        60_000,
      )
      expect(second).toBeDefined()
      await second!.send([{ topic, key: 'k', value: Buffer.from('kept') }])
      await second!.commit()
      const got = await collect(
        log,
        { groupId: uniqueName(`${topic}-read`), topics: [topic], readCommitted: true },
        (rs) => rs.some((r) => r.value?.toString() === 'kept'),
        60_000,
      )
      expect(got.map((r) => r.value!.toString())).toEqual(['kept'])
    } finally {
      await producer.close()
    }
  }, 180_000)

  it('goes on after the restart with no count lost or doubled', async () => {
    const id = uniqueName('restart')
    const topics = { input: `${id}.in`, output: `${id}.out` }
    const admin = await log.admin()
    await admin.ensureTopics([{ name: topics.input, partitions: 2, replicationFactor: 1 }])
    await admin.close()
    const metrics = new JobMetrics()
    let fatal: Error | undefined
    const running = await runJob(counterJob(topics), log, {
      groupId: `${id}-job`,
      instanceId: 'a',
      changelogTopic: `${id}.changelog`,
      metrics,
      onFatal: (err) => (fatal = err),
      logger: testLogger('job-restart'),
    })
    const keys = ['k1', 'k2', 'k3', 'k4']
    const outputs = (n: number) =>
      collect(
        log,
        { groupId: uniqueName(`${id}-read`), topics: [topics.output] },
        (rs) => rs.length >= n,
        90_000,
      )
    try {
      const send = async () => {
        const producer = await log.producer()
        try {
          await producer.send(keys.map((k) => ({ topic: topics.input, key: k, value: Buffer.from('x') })))
        } finally {
          await producer.close()
        }
      }
      for (let round = 1; round <= 5; round++) await send()
      await outputs(20)

      broker.stop()
      await new Promise((r) => setTimeout(r, 3_000))
      broker.start()

      for (let round = 6; round <= 10; round++) await within(send(), 60_000)
      const out = (await outputs(40)).map((r) => r.value!.toString())
      expect(out.sort()).toEqual(
        keys.flatMap((k) => Array.from({ length: 10 }, (_, i) => `${k}=${i + 1}`)).sort(),
      )
      expect(fatal).toBeUndefined()
      const tx = await metrics.registry.getSingleMetric('fleetstream_job_transactions_total')!.get()
      const committed = tx.values.filter((v) => v.labels.outcome === 'committed')
      expect(committed.reduce((a, v) => a + v.value, 0)).toBeGreaterThanOrEqual(2)
    } finally {
      await running.close()
    }
  }, 240_000)
})
