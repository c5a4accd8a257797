import { EmbeddedEventLog } from '../../core/embedded-log/log'
import type { EventLog } from '../../core/kafka/log'
import { collect, testKafkaLog, testLogger } from '../../test/kafka'
import { uniqueName } from '../../test/servers'
import { defineJob, type StreamJob } from './job'
import { JobMetrics } from './metrics'
import { runJob } from './runner'
import { tempDir } from '../../test/tmp'
import { counterJob } from '../testing/counter-job'

/** Runs `job` as instance `a` of group `<id>-job`, with metrics of its own. */
async function start<S>(job: StreamJob<S>, log: EventLog, id: string, commitIntervalMs?: number) {
  const metrics = new JobMetrics()
  const running = await runJob(job, log, {
    groupId: `${id}-job`,
    instanceId: 'a',
    changelogTopic: `${id}.changelog`,
    commitIntervalMs,
    metrics,
    logger: testLogger('runner'),
  })
  return { metrics, running }
}

/** A fresh input topic with `partitions` partitions; the output topic's name beside it. */
async function inputTopic(log: EventLog, prefix: string, partitions: number) {
  const id = uniqueName(prefix)
  const topics = { input: `${id}.in`, output: `${id}.out` }
  const admin = await log.admin()
  await admin.ensureTopics([{ name: topics.input, partitions, replicationFactor: 1 }])
  await admin.close()
  return { id, topics }
}

/** The value of a job metric (summed over its label sets). */
async function metric(metrics: JobMetrics, name: string): Promise<number> {
  const m = await metrics.registry.getSingleMetric(name)!.get()
  return m.values
    .filter((v) => !('metricName' in v) || v.metricName === `${name}_count`)
    .reduce((a, v) => a + v.value, 0)
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
    const { id, topics } = await inputTopic(log, 'runner', 2)
    let failed = false
    const job = counterJob(topics, (r) => {
      if (r.value!.toString() === 'boom' && !failed) {
        failed = true
        throw new Error('injected failure after a state change')
      }
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
      expect(await metric(metrics, 'fleetstream_job_batch_failures_total')).toBe(1)
    } finally {
      await producer.close()
      await running.close()
    }
  })

  it('keeps a partition state across batches of a transactional input: restored once, not per batch', async () => {
    const { id, topics } = await inputTopic(log, 'markers', 1)
    const { metrics, running } = await start(counterJob(topics), log, id)
    // An upstream job's transactions: on Kafka each commit marker takes an offset, so the
    // offsets the job sees are not continuous. (The runtime once took that gap for another
    // instance's work and restored the state from the changelog before every batch.)
    const upstream = await log.transactionalProducer(`${id}-upstream`)
    try {
      for (let round = 1; round <= 8; round++) {
        const tx = await upstream.begin()
        await tx.send([{ topic: topics.input, key: 'k', value: Buffer.from('x') }])
        await tx.commit()
        await collect(
          log,
          { groupId: `${id}-read-${round}`, topics: [topics.output] },
          (rs) => rs.length >= round,
        )
      }
      const out = await collect(
        log,
        { groupId: `${id}-read`, topics: [topics.output] },
        (rs) => rs.length >= 8,
      )
      expect(out.map((r) => r.value!.toString())).toEqual(Array.from({ length: 8 }, (_, i) => `k=${i + 1}`))
      expect(await metric(metrics, 'fleetstream_job_restore_seconds')).toBe(1)
    } finally {
      await upstream.close()
      await running.close()
    }
  })

  it('spaces transactions by commitIntervalMs: records that come meanwhile wait for the next one', async () => {
    const { id, topics } = await inputTopic(log, 'interval', 1)
    const calls: number[] = []
    const job = counterJob(topics)
    const { metrics, running } = await start(
      { ...job, process: (st, rs, now) => (calls.push(Date.now()), job.process(st, rs, now)) },
      log,
      id,
      500,
    )
    const producer = await log.producer()
    try {
      // 12 records 25 ms apart (~300 ms): without the interval, about one transaction each.
      for (let i = 0; i < 12; i++) {
        await producer.send([{ topic: topics.input, key: 'k', value: Buffer.from('x') }])
        await new Promise((r) => setTimeout(r, 25))
      }
      const out = await collect(
        log,
        { groupId: `${id}-read`, topics: [topics.output] },
        (rs) => rs.length >= 12,
      )
      expect(out.map((r) => r.value!.toString())).toEqual(Array.from({ length: 12 }, (_, i) => `k=${i + 1}`))
      const tx = await metrics.registry.getSingleMetric('fleetstream_job_transactions_total')!.get()
      const committed = tx.values
        .filter((v) => v.labels.outcome === 'committed')
        .reduce((a, v) => a + v.value, 0)
      expect(committed).toBeGreaterThanOrEqual(1)
      expect(committed).toBeLessThanOrEqual(3)
      // Steps of one group run back to back; groups are at least the interval apart.
      for (let i = 1; i < calls.length; i++) {
        const gap = calls[i]! - calls[i - 1]!
        if (gap > 100) expect(gap).toBeGreaterThanOrEqual(450)
      }
    } finally {
      await producer.close()
      await running.close()
    }
  })

  it('skips records its restored state already reflects when the committed offsets lag behind', async () => {
    const { id, topics } = await inputTopic(log, 'position', 2)
    const keys = ['k1', 'k2', 'k3', 'k4']
    const producer = await log.producer()
    const send = () =>
      producer.send(keys.map((k) => ({ topic: topics.input, key: k, value: Buffer.from('x') })))
    const outputs = (n: number) =>
      collect(log, { groupId: uniqueName(`${id}-read`), topics: [topics.output] }, (rs) => rs.length >= n)
    try {
      const first = await start(counterJob(topics), log, id)
      for (let round = 1; round <= 5; round++) await send()
      await outputs(20)
      await first.running.close()
      // The group's committed offsets go back to the start, as when a transaction's offsets are
      // not yet visible to the group after a rebalance: the records come again.
      const rewind = await log.transactionalProducer(`${id}-rewind`)
      const tx = await rewind.begin()
      await tx.sendOffsets(
        `${id}-job`,
        [0, 1].map((partition) => ({ topic: topics.input, partition, offset: '0' })),
      )
      await tx.commit()
      await rewind.close()

      const second = await start(counterJob(topics), log, id)
      try {
        await send()
        const out = (await outputs(24)).map((r) => r.value!.toString())
        // Counted once each: the new round is the 6th, and nothing was counted twice.
        expect(out.sort()).toEqual(
          keys.flatMap((k) => Array.from({ length: 6 }, (_, i) => `${k}=${i + 1}`)).sort(),
        )
        expect(await metric(second.metrics, 'fleetstream_job_skipped_records_total')).toBe(20)
        expect(await metric(second.metrics, 'fleetstream_job_records_in_total')).toBe(4)
      } finally {
        await second.running.close()
      }
    } finally {
      await producer.close()
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
    const { id, topics } = await inputTopic(log, 'group', 4)
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
