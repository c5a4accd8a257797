import { EmbeddedEventLog } from '../../core/embedded-log/log'
import type { EventLog } from '../../core/kafka/log'
import { collect, testKafkaLog, testLogger } from '../../test/kafka'
import { uniqueName } from '../../test/servers'
import { defineJob, type StreamJob } from './job'
import { JobMetrics } from './metrics'
import { runJob } from './runner'
import { tempDir } from '../../test/tmp'

/** Runs `job` as instance `a` of group `<id>-job`, with metrics of its own. */
async function start<S>(job: StreamJob<S>, log: EventLog, id: string) {
  const metrics = new JobMetrics()
  const running = await runJob(job, log, {
    groupId: `${id}-job`,
    instanceId: 'a',
    changelogTopic: `${id}.changelog`,
    metrics,
    logger: testLogger('runner'),
  })
  return { metrics, running }
}

// The runtime with a job of its own: a per-key running count (stateful, changelogged) that
// fails once, after changing its state, in the middle of the stream. The same code on both
// transports: Kafka, and the embedded log of `fleetstream up`.
describe.each([
  ['Kafka [kafka]', (): EventLog => testKafkaLog()],
  [
    'the embedded log',
    (): EventLog =>
      new EmbeddedEventLog({
        dir: tempDir('fs-runner-'),
        logger: testLogger('embedded'),
      }),
  ],
])('stream-jobs > runtime on %s', (_title, make) => {
  let log: EventLog
  beforeAll(() => {
    log = make()
  })
  afterAll(async () => {
    await log?.close()
  })

  it('retries a failed step from restored state: no count lost or doubled', async () => {
    const id = uniqueName('runner')
    const topics = { input: `${id}.in`, output: `${id}.out` }
    const admin = await log.admin()
    await admin.ensureTopics([{ name: topics.input, partitions: 2, replicationFactor: 1 }])
    await admin.close()
    let failed = false
    const job = defineJob<Map<string, number>>({
      name: 'counter',
      inputTopics: [topics.input],
      outputTopics: [topics.output],
      initState: () => new Map(),
      restore: (st, key, value) => st.set(key, Number(value.toString())),
      process(st, records) {
        const outputs = []
        const changelog = new Map<string, Buffer | null>()
        for (const r of records) {
          const n = (st.get(r.key!) ?? 0) + 1
          st.set(r.key!, n)
          if (r.value!.toString() === 'boom' && !failed) {
            failed = true
            throw new Error('injected failure after a state change')
          }
          changelog.set(r.key!, Buffer.from(String(n)))
          outputs.push({ topic: topics.output, key: r.key, value: Buffer.from(`${r.key}=${n}`) })
        }
        return { outputs, changelog }
      },
    })
    const { metrics, running } = await start(job, log, id)
    const producer = await log.producer()
    try {
      const keys = ['k1', 'k2', 'k3', 'k4']
      const send = (round: number) =>
        producer.send(
          keys.map((k) => ({
            topic: topics.input,
            key: k,
            value: Buffer.from(round === 5 && k === 'k2' ? 'boom' : 'x'),
          })),
        )
      for (let round = 1; round <= 10; round++) await send(round)
      const out = await collect(
        log,
        { groupId: `${id}-read`, topics: [topics.output] },
        (rs) => rs.length >= 40,
        60_000,
      )
      expect(failed).toBe(true)
      const got = out.map((r) => r.value!.toString()).sort()
      const want = keys.flatMap((k) => Array.from({ length: 10 }, (_, i) => `${k}=${i + 1}`)).sort()
      expect(got).toEqual(want)
      expect(
        (await metrics.registry.getSingleMetric('fleetstream_job_batch_failures_total')!.get()).values[0]!
          .value,
      ).toBe(1)
    } finally {
      await producer.close()
      await running.close()
    }
  })
})

// kafkajs hands the batches of one fetch to its workers one after the other; the runner must
// group them into one transaction (it once committed the first alone, then the rest: two
// transactions per fetch, and a reading waited for both).
describe('stream-jobs > runtime on Kafka [kafka]', () => {
  const log = testKafkaLog()
  afterAll(() => log.close())

  it('commits the batches of one fetch, all partitions, in one transaction', async () => {
    const id = uniqueName('group')
    const topics = { input: `${id}.in`, output: `${id}.out` }
    const admin = await log.admin()
    await admin.ensureTopics([{ name: topics.input, partitions: 4, replicationFactor: 1 }])
    await admin.close()
    const producer = await log.producer()
    const keys = Array.from({ length: 40 }, (_, i) => `k${i}`)
    // Every partition has records before the job starts: its first fetch returns all four.
    await producer.send(keys.map((k) => ({ topic: topics.input, key: k, value: Buffer.from('x') })))
    await producer.close()
    const partitions = new Set<number>()
    const job = defineJob<null>({
      name: 'echo',
      inputTopics: [topics.input],
      outputTopics: [topics.output],
      initState: () => null,
      restore: () => undefined,
      process(_st, records) {
        for (const r of records) partitions.add(r.partition)
        return {
          outputs: records.map((r) => ({ topic: topics.output, key: r.key, value: r.value })),
          changelog: new Map(),
        }
      },
    })
    const { metrics, running } = await start(job, log, id)
    try {
      const out = await collect(
        log,
        { groupId: `${id}-read`, topics: [topics.output] },
        (rs) => rs.length >= 40,
      )
      expect(out.map((r) => r.key).sort()).toEqual([...keys].sort())
      expect(partitions.size).toBe(4)
      const tx = await metrics.registry.getSingleMetric('fleetstream_job_transactions_total')!.get()
      expect(tx.values.filter((v) => v.labels.outcome === 'committed').map((v) => v.value)).toEqual([1])
    } finally {
      await running.close()
    }
  })
})
