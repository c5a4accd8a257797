import { MessageChannel, type MessagePort } from 'node:worker_threads'
import { eventLogContract } from '../../test/log-contract'
import { testLogger } from '../../test/kafka'
import { tempDir } from '../../test/tmp'
import { EmbeddedEventLog } from '../embedded-log/log'
import { LogError } from '../errors'
import type { EventLog, InRecord } from './log'
import { serveEventLog, ThreadEventLog } from './log-thread'

/**
 * The embedded log served across a MessageChannel: the same messages, structured cloning and
 * transfers as between `up`'s main thread and its jobs thread, in one thread for the test.
 */
class ServedLog extends ThreadEventLog {
  constructor(
    private readonly inner: EventLog,
    private readonly ports: [MessagePort, MessagePort],
    private readonly served: { stop(): Promise<void> },
  ) {
    super(ports[1])
  }

  override async close(): Promise<void> {
    await super.close()
    await this.served.stop()
    await this.inner.close()
    for (const p of this.ports) p.close()
  }
}

function servedLog(fetchLingerMs?: number): ServedLog {
  const inner = new EmbeddedEventLog({
    dir: tempDir('fs-log-thread-'),
    logger: testLogger('log-thread'),
    fetchLingerMs,
  })
  const { port1, port2 } = new MessageChannel()
  return new ServedLog(inner, [port1, port2], serveEventLog(inner, port1))
}

describe('core > event-log contract on the embedded log across threads', () => {
  eventLogContract(() => servedLog())
})

describe('core > event log across threads', () => {
  let log: ServedLog
  beforeEach(() => {
    log = servedLog()
  })
  afterEach(async () => {
    await log.close()
  })

  it('hands over no batch of a partition the owner paused when it took its assignment', async () => {
    // A job that reads its table first pauses its streams in onAssign; the pause crosses the
    // thread after fetching has started, so the serving side holds every partition until the
    // worker has taken the assignment.
    const admin = await log.admin()
    await admin.ensureTopics([
      { name: 'table', partitions: 1, replicationFactor: 1 },
      { name: 'stream', partitions: 1, replicationFactor: 1 },
    ])
    await admin.close()
    const p = await log.producer()
    await p.send([
      ...Array.from({ length: 5 }, (_, i) => ({ topic: 'table', key: `k${i}`, value: Buffer.from('t') })),
      ...Array.from({ length: 5 }, (_, i) => ({ topic: 'stream', key: `k${i}`, value: Buffer.from('s') })),
    ])
    await p.close()
    const seen: string[] = []
    const c = await log.consumer({
      groupId: 'g',
      topics: ['table', 'stream'],
      fromBeginning: true,
      onAssign: (a) => c.pause('stream', a.get('stream') ?? []),
    })
    await c.run(async (batch) => {
      seen.push(...batch.records.map((r) => r.topic))
    })
    await new Promise((r) => setTimeout(r, 500))
    expect(seen).toEqual(Array(5).fill('table'))
    expect(c.assignment()).toEqual(
      new Map([
        ['table', [0]],
        ['stream', [0]],
      ]),
    )
    expect(c.member()).toBeUndefined()
    c.resume('stream', [0])
    const end = Date.now() + 5_000
    while (seen.length < 10 && Date.now() < end) await new Promise((r) => setTimeout(r, 20))
    expect(seen).toEqual([...Array(5).fill('table'), ...Array(5).fill('stream')])
    await c.close()
  })

  it('carries records whole (keys, values, headers, timestamps, offsets) and errors with their kind', async () => {
    const admin = await log.admin()
    await admin.ensureTopics([{ name: 'r', partitions: 2, replicationFactor: 1 }])
    expect(await admin.partitionCount('r')).toBe(2)
    await expect(admin.partitionCount('missing')).rejects.toThrow(LogError)
    const p = await log.producer()
    const metas = await p.send([
      {
        topic: 'r',
        key: 'ä',
        value: Buffer.alloc(3, 7),
        headers: { h: 'v', b: Buffer.from([0, 1]) },
        timestamp: 1234,
        partition: 1,
      },
      { topic: 'r', key: null, value: null, partition: 1 },
    ])
    expect(metas).toEqual([
      { topic: 'r', partition: 1, offset: '0' },
      { topic: 'r', partition: 1, offset: '1' },
    ])
    const err = await p.send([{ topic: 'r', key: 'k', value: null, partition: 5 }]).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(LogError)
    expect(err).toMatchObject({ retriable: false, message: 'topic r has no partition 5' })
    await p.close()
    const got: InRecord[] = []
    await log.readPartition('r', 1, (r) => got.push(r))
    expect(got).toEqual([
      {
        topic: 'r',
        partition: 1,
        offset: '0',
        key: 'ä',
        value: Buffer.alloc(3, 7),
        headers: { h: Buffer.from('v'), b: Buffer.from([0, 1]) },
        timestamp: 1234,
      },
      expect.objectContaining({ offset: '1', key: null, value: null, headers: {} }),
    ])
    expect(await admin.endOffsets('r')).toEqual(
      new Map([
        [0, '0'],
        [1, '2'],
      ]),
    )
    await admin.close()
  })

  it('a transaction crosses once, at commit: all of it or, on any error, none of it', async () => {
    const admin = await log.admin()
    await admin.ensureTopics([
      { name: 'in', partitions: 1, replicationFactor: 1 },
      { name: 'out', partitions: 1, replicationFactor: 1 },
    ])
    const calls: string[] = []
    const post = log.post.bind(log)
    log.post = (m, transfer) => {
      if (m.lt === 'call') calls.push(m.op)
      post(m, transfer)
    }
    const tp = await log.transactionalProducer('job-1')
    const tx = await tp.begin()
    await tx.send([{ topic: 'out', key: 'a', value: Buffer.from('1') }])
    await tx.send([{ topic: 'out', key: 'b', value: Buffer.from('2') }])
    await tx.sendOffsets('g', [{ topic: 'in', partition: 0, offset: '7' }])
    expect(calls).toEqual(['transactionalProducer'])
    await tx.commit()
    expect(calls).toEqual(['transactionalProducer', 'transaction'])
    await expect(tx.send([])).rejects.toThrow(/ended/)

    // A record for a partition that does not exist: the commit fails, the good record and the
    // offsets with it are not written; abort afterwards has nothing left to undo.
    const bad = await tp.begin()
    await bad.send([{ topic: 'out', key: 'c', value: Buffer.from('3') }])
    await bad.send([{ topic: 'out', key: 'd', value: null, partition: 4 }])
    await bad.sendOffsets('g', [{ topic: 'in', partition: 0, offset: '9' }])
    await expect(bad.commit()).rejects.toThrow(LogError)
    await bad.abort()
    // Nothing sent before an abort crosses at all.
    const dropped = await tp.begin()
    await dropped.send([{ topic: 'out', key: 'e', value: Buffer.from('5') }])
    await dropped.abort()
    expect(calls.filter((c) => c === 'transaction')).toHaveLength(2)

    // A newer producer with the same id fences this one, at its commit.
    const stale = await tp.begin()
    await stale.send([{ topic: 'out', key: 'f', value: Buffer.from('6') }])
    await log.transactionalProducer('job-1')
    await expect(stale.commit()).rejects.toThrow(/fenced/)

    const keys: (string | null)[] = []
    await log.readPartition('out', 0, (r) => keys.push(r.key))
    expect(keys).toEqual(['a', 'b'])
    expect((await admin.committedOffsets('g', 'in')).get(0)).toBe('7')
    await admin.close()
  })

  it('reads a topic of more records than one message carries, in order', async () => {
    const admin = await log.admin()
    await admin.ensureTopics([{ name: 'big', partitions: 1, replicationFactor: 1 }])
    await admin.close()
    const p = await log.producer()
    await p.send(Array.from({ length: 4_500 }, (_, i) => ({ topic: 'big', key: String(i), value: null })))
    await p.close()
    const keys: string[] = []
    await log.readTopic('big', (r) => keys.push(r.key!))
    expect(keys).toEqual(Array.from({ length: 4_500 }, (_, i) => String(i)))
  })

  it("sends a batch the consumer's assignment only when it changed; the worker's copy follows rebalances", async () => {
    const inner = new EmbeddedEventLog({ dir: tempDir('fs-log-thread-'), logger: testLogger('log-thread') })
    const { port1, port2 } = new MessageChannel()
    const batches: Record<string, unknown>[] = []
    const post = port1.postMessage.bind(port1)
    port1.postMessage = (
      m: Record<string, unknown>,
      transfer?: Parameters<MessagePort['postMessage']>[1],
    ) => {
      if (m.lt === 'batch') batches.push(m)
      post(m, transfer)
    }
    const served = new ServedLog(inner, [port1, port2], serveEventLog(inner, port1))
    try {
      const admin = await served.admin()
      await admin.ensureTopics([{ name: 't', partitions: 2, replicationFactor: 1 }])
      const p = await served.producer()
      const got: string[] = []
      const c1 = await served.consumer({ groupId: 'g', topics: ['t'], fromBeginning: true })
      void c1.run(async (b) => {
        for (const r of b.records) got.push(r.key!)
      })
      for (let i = 0; i < 10; i++) {
        await p.send([{ topic: 't', partition: i % 2, key: `k${i}`, value: null }])
        await new Promise((r) => setTimeout(r, 5))
      }
      while (got.length < 10) await new Promise((r) => setTimeout(r, 10))
      expect(batches.length).toBeGreaterThan(1)
      // The assignment crossed in its own message, before any batch.
      expect(batches.filter((m) => 'assignment' in m)).toHaveLength(0)
      expect(c1.assignment()).toEqual(new Map([['t', [0, 1]]]))
      const c2 = await served.consumer({ groupId: 'g', topics: ['t'], fromBeginning: true })
      while (c1.assignment().get('t')?.length !== 1) await new Promise((r) => setTimeout(r, 10))
      expect(c1.assignment().get('t')).toHaveLength(1)
      await c2.close()
      await c1.close()
      await p.close()
      await admin.close()
    } finally {
      await served.close()
    }
  })
})
