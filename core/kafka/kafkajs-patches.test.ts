import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

// patches/kafkajs+2.2.4.patch (applied by `npm ci` through patch-package) removes costs the
// benchmark profiles showed in kafkajs's produce path: a quadratic grouping of a send's messages
// by partition, a string sort of every batch's timestamps, a zero-filled buffer for every
// encoder (one per record at least), and records' encoders growing and copying themselves.
describe('core > kafka > kafkajs patches', () => {
  // kafkajs's internals are not in its typings: loaded by path.
  const req = createRequire(__filename)
  const load = (rel: string) => req(`kafkajs/src/${rel}`) as unknown
  const source = (rel: string) => readFileSync(req.resolve(`kafkajs/src/${rel}`), 'utf8')

  it('are applied to the installed kafkajs', () => {
    expect(source('producer/groupMessagesPerPartition.js')).toContain('fleetstream patch')
    expect(source('protocol/requests/produce/v3/request.js')).toContain('fleetstream patch')
    expect(source('protocol/encoder.js')).toContain('fleetstream patch')
    expect(source('protocol/recordBatch/record/v0/index.js')).toContain('fleetstream patch')
  })

  // Encoders now take their memory unzeroed from Node's buffer pool: whatever the pool held
  // must never reach the bytes sent (a stale byte would be a corrupt record or a failed CRC).
  it('encode record batches to the same bytes whatever memory held before, and decode them back', async () => {
    type Rec = { key: Buffer | null; value: Buffer | string | null; headers: Record<string, string> }
    const Record = load('protocol/recordBatch/record/v0') as (r: object) => unknown
    const { RecordBatch } = load('protocol/recordBatch/v0') as {
      RecordBatch: (b: object) => Promise<{ buffer: Buffer }>
    }
    const Decoder = load('protocol/decoder') as new (b: Buffer) => unknown
    const decodeBatch = load('protocol/recordBatch/v0/decoder') as (d: unknown) => Promise<{
      records: { key: Buffer | null; value: Buffer | null; headers: Record<string, Buffer> }[]
    }>
    const records = [0, 1, 127, 128, 600, 5_000, 70_000].map((n, i): Rec => ({
      key: i === 0 ? null : Buffer.from(`dev-${i}`),
      value: i === 1 ? null : i === 2 ? 'ä'.repeat(n) : Buffer.alloc(n, i),
      headers: i % 2 ? { 'fs-reason-code': `R${i}`, empty: '' } : ({} as Record<string, string>),
    }))
    const encode = async (garbage: number) => {
      // Fill the pool (and fresh allocations) with a marker first.
      for (let i = 0; i < 64; i++) Buffer.allocUnsafe(1 << (i % 14)).fill(garbage)
      const batch = await RecordBatch({
        records: records.map((r, i) => Record({ ...r, offsetDelta: i, timestampDelta: i })),
        firstTimestamp: 1_700_000_000_000,
        maxTimestamp: 1_700_000_000_006,
      })
      return Buffer.from(batch.buffer)
    }
    const a = await encode(0xab)
    const b = await encode(0x5c)
    expect(b.equals(a)).toBe(true)
    const decoded = await decodeBatch(new Decoder(a))
    expect(
      decoded.records.map((r) => ({
        key: r.key,
        value: r.value,
        headers: Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, v.toString()])),
      })),
    ).toEqual(
      records.map((r) => ({
        key: r.key,
        value: typeof r.value === 'string' ? Buffer.from(r.value) : r.value,
        headers: r.headers,
      })),
    )
  })

  it('group messages by partition in their order, as before', () => {
    const group = load('producer/groupMessagesPerPartition.js') as (a: {
      topic: string
      partitionMetadata: unknown[]
      messages: { key: string; partition: number }[]
      partitioner: (x: { message: { partition: number } }) => number
    }) => Record<number, { key: string }[]>
    const messages = Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, partition: i % 3 }))
    const got = group({
      topic: 't',
      partitionMetadata: [{}, {}, {}],
      messages,
      partitioner: ({ message }) => message.partition,
    })
    expect(Object.fromEntries(Object.entries(got).map(([p, ms]) => [p, ms.map((m) => m.key)]))).toEqual({
      0: ['k0', 'k3', 'k6', 'k9'],
      1: ['k1', 'k4', 'k7'],
      2: ['k2', 'k5', 'k8'],
    })
    expect(group({ topic: 't', partitionMetadata: [], messages, partitioner: () => 0 })).toEqual({})
  })

  // The transactional producer looks each coordinator up once, not before every request (four
  // FindCoordinator round trips per transaction), and looks again after a request to it fails.
  // kafkajs's cluster is stood in for: this is about kafkajs's own bookkeeping; the real broker,
  // restarted under a running job, is in stream-jobs/runtime/broker-restart.int.test.ts.
  it('keep the transaction and group coordinators between transactions, until a request fails', async () => {
    expect(source('producer/eosManager/index.js')).toContain('fleetstream: coordinators are looked up once')
    const createEosManager = load('producer/eosManager') as (o: object) => {
      initProducerId(): Promise<void>
      beginTransaction(): void
      addPartitionsToTransaction(t: object[]): Promise<void>
      sendOffsets(o: object): Promise<void>
      commit(): Promise<void>
      abort(): Promise<void>
    }
    const calls: string[] = []
    let failAddOffsets = false
    const broker = {
      initProducerId: async () => ({ producerId: 7, producerEpoch: 0 }),
      addPartitionsToTxn: async () => void calls.push('AddPartitionsToTxn'),
      addOffsetsToTxn: async () => {
        calls.push('AddOffsetsToTxn')
        if (failAddOffsets) throw Object.assign(new Error('connection closed'), { retriable: true })
      },
      txnOffsetCommit: async () => void calls.push('TxnOffsetCommit'),
      endTxn: async () => void calls.push('EndTxn'),
    }
    const cluster = {
      retry: { retries: 0 },
      refreshMetadataIfNecessary: async () => undefined,
      findGroupCoordinator: async ({ coordinatorType }: { coordinatorType: number }) => {
        calls.push(`FindCoordinator(${coordinatorType === 1 ? 'transaction' : 'group'})`)
        return broker
      },
    }
    const silent = () => undefined
    const logger = { debug: silent, info: silent, warn: silent, error: silent, namespace: () => logger }
    const eos = createEosManager({ logger, cluster, transactional: true, transactionalId: 'tx-1' })
    await eos.initProducerId()
    const transaction = async () => {
      eos.beginTransaction()
      await eos.addPartitionsToTransaction([{ topic: 'out', partitions: [{ partition: 0 }] }])
      await eos.sendOffsets({
        consumerGroupId: 'g',
        topics: [{ topic: 'in', partitions: [{ partition: 0, offset: '5' }] }],
      })
      await eos.commit()
    }
    await transaction()
    await transaction()
    const perTransaction = ['AddPartitionsToTxn', 'AddOffsetsToTxn', 'TxnOffsetCommit', 'EndTxn']
    expect(calls).toEqual([
      'FindCoordinator(transaction)',
      'AddPartitionsToTxn',
      'AddOffsetsToTxn',
      'FindCoordinator(group)',
      'TxnOffsetCommit',
      'EndTxn',
      ...perTransaction,
    ])
    // A failed request to the transaction coordinator: it is looked up again, for the abort.
    calls.length = 0
    failAddOffsets = true
    await expect(transaction()).rejects.toThrow('connection closed')
    failAddOffsets = false
    await eos.abort()
    expect(calls).toEqual(['AddPartitionsToTxn', 'AddOffsetsToTxn', 'FindCoordinator(transaction)', 'EndTxn'])
    calls.length = 0
    await transaction()
    expect(calls).toEqual(perTransaction)
  })
})
