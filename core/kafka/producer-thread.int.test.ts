import { kafkaConfig } from '../config/schema'
import { LogError } from '../errors'
import { collect, testKafkaLog, testLogger } from '../../test/kafka'
import { serverEnv } from '../../test/servers'
import type { OutRecord } from './log'
import { partitionForKey } from './murmur2'
import { threadedProducer, type ThreadedProducer } from './producer-thread'

const RUN = `pt${Date.now().toString(36)}`

describe('core > kafka > producer thread [kafka]', () => {
  const log = testKafkaLog()
  const cfg = kafkaConfig.parse({ brokers: serverEnv().FS_KAFKA_BROKERS, clientId: 'fleetstream-test' })
  let producer: ThreadedProducer

  beforeAll(async () => {
    const admin = await log.admin()
    await admin.ensureTopics([{ name: `${RUN}.a`, partitions: 4, replicationFactor: 1 }])
    await admin.close()
    producer = await threadedProducer(cfg, testLogger('producer-thread'))
  })

  afterAll(async () => {
    await producer.close()
    await log.close()
  })

  it('writes records where the in-thread producer would, and says where', async () => {
    const topic = `${RUN}.a`
    const records: OutRecord[] = [
      ...Array.from({ length: 40 }, (_, i) => ({
        topic,
        key: `dev-${i % 7}`,
        value: Buffer.from(`v${i}`),
        timestamp: 1_700_000_000_000 + i,
      })),
      { topic, key: 'dev-x', value: Buffer.from('h'), headers: { 'fs-a': 'ä', 'fs-b': Buffer.from([0, 1]) } },
      { topic, key: null, value: Buffer.from('explicit'), partition: 2 },
    ]
    const metas = await producer.send(records)
    expect(metas).toHaveLength(records.length)
    records.forEach((r, i) => {
      expect(metas[i]!.topic).toBe(topic)
      expect(metas[i]!.partition).toBe(r.partition ?? partitionForKey(r.key!, 4))
    })
    // Offsets count up within each partition, in send order.
    const byPartition = new Map<number, bigint[]>()
    for (const m of metas)
      byPartition.set(m.partition, [...(byPartition.get(m.partition) ?? []), BigInt(m.offset)])
    for (const offsets of byPartition.values())
      offsets.forEach((o, i) => i > 0 && expect(o).toBe(offsets[i - 1]! + 1n))

    const got = await collect(
      log,
      { groupId: `${RUN}.g`, topics: [topic] },
      (r) => r.length >= records.length,
    )
    const at = new Map(got.map((r) => [`${r.partition}:${r.offset}`, r]))
    records.forEach((r, i) => {
      const c = at.get(`${metas[i]!.partition}:${metas[i]!.offset}`)!
      expect(c.key).toBe(r.key)
      expect(c.value).toEqual(r.value)
      if (r.timestamp !== undefined) expect(c.timestamp).toBe(r.timestamp)
    })
    const h = at.get(`${metas[40]!.partition}:${metas[40]!.offset}`)!.headers
    expect(h['fs-a']!.toString()).toBe('ä')
    expect(h['fs-b']).toEqual(Buffer.from([0, 1]))
  })

  it('fails a send the way the log does, with its reason and retriability', async () => {
    const err = await producer
      .send([{ topic: `${RUN}.missing`, key: 'k', value: null }])
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(LogError)
    expect((err as LogError).message).toMatch(/does not host this topic-partition|has no partitions/)
  })

  it('fails the sends in flight when the thread dies, and starts a new thread for the next', async () => {
    const topic = `${RUN}.a`
    const inFlight = producer.send([{ topic, key: 'lost', value: Buffer.from('1') }])
    producer.kill()
    const err = await inFlight.catch((e: unknown) => e)
    expect(err).toBeInstanceOf(LogError)
    expect((err as LogError).retriable).toBe(true)
    expect((err as LogError).message).toMatch(/producer thread stopped/)
    const [meta] = await producer.send([{ topic, key: 'after', value: Buffer.from('2') }])
    expect(meta!.partition).toBe(partitionForKey('after', 4))
  })
})
