import { appendFileSync, readdirSync, statSync } from 'node:fs'
import path from 'node:path'
import { eventLogContract } from '../../test/log-contract'
import { testLogger } from '../../test/kafka'
import type { InRecord, OutRecord, RecordBatch, Transaction } from '../kafka/log'
import { partitionForKey } from '../kafka/murmur2'
import {
  isPackable,
  packRecords,
  takesPacked,
  unpackInRecords,
  type PackableBatch,
  type PackedSender,
} from '../kafka/record-pack'
import { Journal } from './journal'
import { EmbeddedEventLog, Partition, type Rec } from './log'
import { tempDir } from '../../test/tmp'

const dir = () => tempDir('fs-embedded-log-')

describe('core > event-log contract on the embedded log', () => {
  eventLogContract(() => new EmbeddedEventLog({ dir: dir(), logger: testLogger('embedded-log') }))
})

describe('core > embedded log: durability and retention', () => {
  it('keeps topics, records and committed offsets across a restart, and cuts a torn tail', async () => {
    const d = dir()
    const a = new EmbeddedEventLog({ dir: d, logger: testLogger('embedded-log') })
    const admin = await a.admin()
    await admin.ensureTopics([{ name: 't', partitions: 3, replicationFactor: 1 }])
    const p = await a.producer()
    await p.send(
      Array.from({ length: 100 }, (_, i) => ({
        topic: 't',
        key: `k${i % 7}`,
        value: Buffer.from(String(i)),
      })),
    )
    const tx = await (await a.transactionalProducer('job')).begin()
    await tx.send([{ topic: 't', key: 'k1', value: Buffer.from('tx') }])
    await tx.sendOffsets('g', [{ topic: 't', partition: 0, offset: '5' }])
    await tx.commit()
    const ends = await admin.endOffsets('t')
    await a.close()
    // A crash in the middle of a write leaves half a frame at the end.
    const seg = readdirSync(d).find((f) => f.endsWith('.seg'))!
    appendFileSync(path.join(d, seg), Buffer.from([200, 0, 0, 0, 1, 2, 3]))
    const b = new EmbeddedEventLog({ dir: d, logger: testLogger('embedded-log') })
    const admin2 = await b.admin()
    expect(await admin2.endOffsets('t')).toEqual(ends)
    expect((await admin2.committedOffsets('g', 't')).get(0)).toBe('5')
    const values: string[] = []
    await b.readTopic('t', (r) => values.push(r.value!.toString()))
    expect(values.sort()).toEqual([...Array.from({ length: 100 }, (_, i) => String(i)), 'tx'].sort())
    // The torn frame is gone and new appends follow the last whole entry.
    await (await b.producer()).send([{ topic: 't', key: 'k0', value: Buffer.from('after') }])
    await b.close()
    const c = new EmbeddedEventLog({ dir: d, logger: testLogger('embedded-log') })
    const after: string[] = []
    await c.readTopic('t', (r) => after.push(r.value!.toString()))
    expect(after).toContain('after')
    expect(after).toHaveLength(102)
    await c.close()
  })

  it('keeps headers as sent (none, text, bytes) across a restart; records without any share no state', async () => {
    const d = dir()
    const a = new EmbeddedEventLog({ dir: d, logger: testLogger('embedded-log') })
    await (await a.admin()).ensureTopics([{ name: 'h', partitions: 1, replicationFactor: 1 }])
    await (
      await a.producer()
    ).send([
      { topic: 'h', key: 'a', value: Buffer.from('1') },
      { topic: 'h', key: 'b', value: Buffer.from('2'), headers: { t: 'text', b: Buffer.from([0, 255]) } },
      { topic: 'h', key: 'c', value: Buffer.from('3'), headers: {} },
    ])
    const read = async (log: EmbeddedEventLog) => {
      const got: { key: string | null; headers: Record<string, Buffer> }[] = []
      await log.readTopic('h', (r) => got.push({ key: r.key, headers: r.headers }))
      return got
    }
    const got = await read(a)
    expect(got.map((r) => r.headers)).toEqual([{}, { t: Buffer.from('text'), b: Buffer.from([0, 255]) }, {}])
    // A reader that writes into a header-less record's headers cannot reach other records'.
    expect(() => {
      got[0]!.headers.x = Buffer.from('x')
    }).toThrow()
    expect(got[2]!.headers).toEqual({})
    await a.close()
    const b = new EmbeddedEventLog({ dir: d, logger: testLogger('embedded-log') })
    expect((await read(b)).map((r) => r.headers)).toEqual([
      {},
      { t: Buffer.from('text'), b: Buffer.from([0, 255]) },
      {},
    ])
    await b.close()
  })

  it('reads journals written before binary batches (records as msgpack arrays)', async () => {
    const d = dir()
    // What the log wrote before: every entry msgpack, a batch's records as arrays.
    const old = new Journal<unknown>(d, { segmentBytes: 1 << 20, fsync: false })
    old.open(() => {})
    await old.append({ k: 'topic', name: 'o', partitions: 2, compacted: false })
    await old.append({
      k: 'batch',
      recs: [
        ['o', 1, 'dev-1', Buffer.from('v1'), { h: Buffer.from('x') }, 1_700_000_000_000],
        ['o', 1, null, null, {}, 1_700_000_000_001],
      ],
      offs: [['g', 'o', 1, 2]],
    })
    await old.close()
    const log = new EmbeddedEventLog({ dir: d, logger: testLogger('embedded-log') })
    const got: InRecord[] = []
    await log.readTopic('o', (r) => got.push(r))
    expect(got.map((r) => [r.partition, r.offset, r.key, r.value, r.headers, r.timestamp])).toEqual([
      [1, '0', 'dev-1', Buffer.from('v1'), { h: Buffer.from('x') }, 1_700_000_000_000],
      [1, '1', null, null, {}, 1_700_000_000_001],
    ])
    expect(log.committedOffset('g', 'o', 1)).toBe(2)
    // New batches go after them in the same segment, and all of it reads back again.
    await (await log.producer()).send([{ topic: 'o', partition: 1, key: 'dev-2', value: Buffer.from('v2') }])
    await log.close()
    const again = new EmbeddedEventLog({ dir: d, logger: testLogger('embedded-log') })
    const keys: (string | null)[] = []
    await again.readTopic('o', (r) => keys.push(r.key))
    expect(keys).toEqual(['dev-1', null, 'dev-2'])
    await again.close()
  })

  it('keeps every record of thousands of concurrent sends (one write of many pieces) across a restart', async () => {
    const d = dir()
    const a = new EmbeddedEventLog({ dir: d, logger: testLogger('embedded-log') })
    await (await a.admin()).ensureTopics([{ name: 'many', partitions: 4, replicationFactor: 1 }])
    const p = await a.producer()
    // More pieces than one writev takes (IOV_MAX, 1024) wait for the same sync.
    await Promise.all(
      Array.from({ length: 1500 }, (_, i) =>
        p.send([
          { topic: 'many', key: `k${i}`, value: Buffer.from(`value-${i}`), headers: { i: String(i) } },
        ]),
      ),
    )
    await a.close()
    const b = new EmbeddedEventLog({ dir: d, logger: testLogger('embedded-log') })
    const got = new Map<string, string>()
    await b.readTopic('many', (r) => got.set(r.key!, `${r.value!.toString()} ${r.headers.i!.toString()}`))
    expect(got.size).toBe(1500)
    for (const i of [0, 777, 1499]) expect(got.get(`k${i}`)).toBe(`value-${i} ${i}`)
    await b.close()
  })

  it('rolls segments: old ones are deleted; compacted topics keep the latest value per key and offsets survive', async () => {
    const d = dir()
    const opts = { dir: d, segmentBytes: 64 * 1024, retainSegments: 2, logger: testLogger('embedded-log') }
    const a = new EmbeddedEventLog(opts)
    const admin = await a.admin()
    await admin.ensureTopics([
      { name: 'stream', partitions: 2, replicationFactor: 1 },
      { name: 'table', partitions: 2, replicationFactor: 1, compacted: true },
    ])
    const p = await a.producer()
    for (let i = 0; i < 100; i++) {
      await p.send([
        ...Array.from({ length: 20 }, (_, j) => ({
          topic: 'stream',
          key: `s${j}`,
          value: Buffer.alloc(100, i),
        })),
        { topic: 'table', key: `dev-${i % 10}`, value: Buffer.from(`v${i}`) },
      ])
      // A group that keeps up: it has read everything written so far.
      const ends = await admin.endOffsets('stream')
      await a.commitOffsets(
        'g',
        [...ends].map(([partition, offset]) => ({ topic: 'stream', partition, offset })),
      )
    }
    await p.send([{ topic: 'table', key: 'dev-3', value: null }]) // a tombstone
    const ends = await admin.endOffsets('table')
    await a.close()
    const segs = readdirSync(d).filter((f) => f.endsWith('.seg'))
    expect(segs.length).toBeLessThanOrEqual(3)
    const total = segs.reduce((n, f) => n + statSync(path.join(d, f)).size, 0)
    expect(total).toBeLessThan(100 * 20 * 130) // far less than everything ever written

    const b = new EmbeddedEventLog(opts)
    const table = new Map<string, string | null>()
    await b.readTopic('table', (r) => table.set(r.key!, r.value?.toString() ?? null))
    for (let k = 0; k < 10; k++) if (k !== 3) expect(table.get(`dev-${k}`)).toBe(`v${90 + k}`)
    expect(table.get('dev-3') ?? null).toBeNull()
    const admin2 = await b.admin()
    expect(await admin2.endOffsets('table')).toEqual(ends)
    expect((await admin2.committedOffsets('g', 'stream')).get(0)).toBe(
      (await admin2.endOffsets('stream')).get(0),
    )
    let stream = 0
    await b.readTopic('stream', () => stream++)
    expect(stream).toBeGreaterThan(0)
    expect(stream).toBeLessThan(2000)
    await b.close()
  })

  it('keeps what a lagging group has not read yet, past the usual retention', async () => {
    const d = dir()
    const a = new EmbeddedEventLog({
      dir: d,
      segmentBytes: 32 * 1024,
      retainSegments: 2,
      logger: testLogger('embedded-log'),
    })
    await (await a.admin()).ensureTopics([{ name: 's', partitions: 1, replicationFactor: 1 }])
    await a.commitOffsets('slow', [{ topic: 's', partition: 0, offset: '10' }])
    const p = await a.producer()
    for (let i = 0; i < 60; i++)
      await p.send(
        Array.from({ length: 10 }, (_, j) => ({
          topic: 's',
          key: 'k',
          value: Buffer.alloc(100, i * 10 + j),
        })),
      )
    expect(readdirSync(d).filter((f) => f.endsWith('.seg')).length).toBeGreaterThan(2)
    let first = -1
    await a.readTopic('s', (r) => void (first < 0 && (first = Number(r.offset))))
    expect(first).toBeLessThanOrEqual(10) // offset 10 onwards is still there for "slow"
    await a.commitOffsets('slow', [{ topic: 's', partition: 0, offset: '600' }])
    for (let i = 0; i < 60; i++)
      await p.send(Array.from({ length: 10 }, () => ({ topic: 's', key: 'k', value: Buffer.alloc(100) })))
    let after = -1
    await a.readTopic('s', (r) => void (after < 0 && (after = Number(r.offset))))
    expect(after).toBeGreaterThan(10) // caught up: old segments went
    await a.close()
  })

  // Writes already on their way to the journal when a segment fills land in the old segment;
  // the new segment's checkpoint must come after them, not describe memory from before them.
  describe('entries in flight when a segment rolls', () => {
    const open = (d: string) =>
      new EmbeddedEventLog({ dir: d, segmentBytes: 1, retainSegments: 1, logger: testLogger('embedded-log') })

    it('a committed offset in flight is not set back by the checkpoint after a restart', async () => {
      const d = dir()
      const a = open(d)
      await (await a.admin()).ensureTopics([{ name: 's', partitions: 1, replicationFactor: 1 }])
      // Every write fills a segment (segmentBytes 1): the first of these two starts a roll
      // while the second is still being written.
      await Promise.all([
        a.commitOffsets('g', [{ topic: 's', partition: 0, offset: '1' }]),
        a.commitOffsets('g', [{ topic: 's', partition: 0, offset: '2' }]),
      ])
      expect(a.committedOffset('g', 's', 0)).toBe(2)
      await a.close()
      const b = open(d)
      expect((await (await b.admin()).committedOffsets('g', 's')).get(0)).toBe('2')
      await b.close()
    })

    it('a compacted record in flight survives the deletion of the segment it was written to', async () => {
      const d = dir()
      const a = open(d)
      await (
        await a.admin()
      ).ensureTopics([{ name: 'c', partitions: 1, replicationFactor: 1, compacted: true }])
      const p = await a.producer()
      await Promise.all([
        a.commitOffsets('g', [{ topic: 'c', partition: 0, offset: '0' }]),
        p.send([{ topic: 'c', key: 'k', value: Buffer.from('in flight') }]),
      ])
      // retainSegments 1: the segment the record went to is gone after the roll.
      await a.close()
      const b = open(d)
      const values: string[] = []
      await b.readTopic('c', (r) => values.push(r.value!.toString()))
      expect(values).toEqual(['in flight'])
      await b.close()
    })
  })

  it('compacted and plain topics read back the same after any number of rolls and restarts (random runs)', async () => {
    // A model: a compacted topic read from the start ends with each key's latest value (none for
    // a deleted key); a plain topic keeps every record since what the retention allows.
    for (let run = 0; run < 20; run++) {
      let seed = run + 1
      const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
      const d = dir()
      const open = () =>
        new EmbeddedEventLog({
          dir: d,
          segmentBytes: 256 + Math.floor(rand() * 4096),
          retainSegments: 1 + Math.floor(rand() * 3),
          logger: testLogger('embedded-log'),
        })
      let log = open()
      await (
        await log.admin()
      ).ensureTopics([
        { name: 'table', partitions: 2, replicationFactor: 1, compacted: true },
        { name: 'stream', partitions: 1, replicationFactor: 1 },
      ])
      const latest = new Map<string, string | null>()
      let streamed = 0
      for (let step = 0; step < 60; step++) {
        const p = await log.producer()
        // A few sends at once: some are on their way when a segment fills.
        const sends = Array.from({ length: 1 + Math.floor(rand() * 4) }, () => {
          const key = `k${Math.floor(rand() * 25)}`
          const value = rand() < 0.15 ? null : `${key}@${run}.${step}.${Math.floor(rand() * 1e6)}`
          latest.set(key, value)
          streamed++
          return p.send([
            { topic: 'table', key, value: value === null ? null : Buffer.from(value) },
            { topic: 'stream', key, value: Buffer.alloc(64 + Math.floor(rand() * 256)) },
          ])
        })
        await Promise.all(sends)
        if (rand() < 0.2) {
          await log.close()
          log = open()
        }
      }
      await log.close()
      log = open()
      const seen = new Map<string, string | null>()
      const offsets: number[][] = [[], []]
      await log.readTopic('table', (r) => {
        seen.set(r.key!, r.value === null ? null : r.value.toString())
        offsets[r.partition]!.push(Number(r.offset))
      })
      const live = (m: Map<string, string | null>) => [...m].filter(([, v]) => v !== null).sort()
      expect(live(seen)).toEqual(live(latest))
      for (const o of offsets) expect(o).toEqual([...o].sort((a, b) => a - b))
      let stream = 0
      await log.readTopic('stream', () => stream++)
      expect(stream).toBeLessThanOrEqual(streamed) // retention may have taken any of them
      await log.close()
    }
  }, 60_000)

  it('a newer transactional producer with the same id fences the older one', async () => {
    const a = new EmbeddedEventLog({ dir: dir(), logger: testLogger('embedded-log') })
    await (await a.admin()).ensureTopics([{ name: 'o', partitions: 1, replicationFactor: 1 }])
    const old = await a.transactionalProducer('job-1')
    const tx = await old.begin()
    await tx.send([{ topic: 'o', key: 'k', value: Buffer.from('old') }])
    await a.transactionalProducer('job-1')
    await expect(tx.commit()).rejects.toThrow(/fenced/)
    let n = 0
    await a.readTopic('o', () => n++)
    expect(n).toBe(0)
    await a.close()
  })
})

describe('core > embedded log: records packed as they cross threads', () => {
  const sent: OutRecord[] = [
    { topic: 'in', key: 'dev-1', value: Buffer.from('a'), headers: { t: 'text', b: Buffer.from([0, 255]) } },
    { topic: 'in', key: 'gerät-ü', value: Buffer.from('b'), timestamp: 1_700_000_000_000 },
    { topic: 'in', key: null, value: Buffer.from('c') },
    { topic: 'in', key: '', value: null },
    { topic: 'table', key: 'k', value: Buffer.from('d'), partition: 1 },
  ]

  it('writes a transaction sent packed as it came: partitions by key as Kafka, timestamps, headers; all or nothing', async () => {
    const d = dir()
    const log = new EmbeddedEventLog({ dir: d, logger: testLogger('embedded-log') })
    await (
      await log.admin()
    ).ensureTopics([
      { name: 'in', partitions: 6, replicationFactor: 1 },
      { name: 'table', partitions: 2, replicationFactor: 1, compacted: true },
    ])
    const tx = await (await log.transactionalProducer('w')).begin()
    expect(takesPacked(tx)).toBe(true)
    const before = Date.now()
    await (tx as Transaction & PackedSender).sendPacked(packRecords(sent))
    await tx.sendOffsets('g', [{ topic: 'in', partition: 0, offset: '3' }])
    await tx.commit()
    const read = async (l: EmbeddedEventLog) => {
      const got: InRecord[] = []
      await l.readTopic('in', (r) => got.push(r))
      await l.readTopic('table', (r) => got.push(r))
      return new Map(got.map((r) => [r.key, r]))
    }
    const got = await read(log)
    expect(got.size).toBe(5)
    for (const key of ['dev-1', 'gerät-ü', '']) expect(got.get(key)!.partition).toBe(partitionForKey(key, 6))
    expect(got.get('dev-1')!.headers).toEqual({ t: Buffer.from('text'), b: Buffer.from([0, 255]) })
    expect(got.get('dev-1')!.timestamp).toBeGreaterThanOrEqual(before)
    expect(got.get('gerät-ü')!.timestamp).toBe(1_700_000_000_000)
    expect(got.get('')!.value).toBeNull()
    expect(got.get(null)!.value).toEqual(Buffer.from('c'))
    expect(got.get('k')).toMatchObject({ topic: 'table', partition: 1, value: Buffer.from('d') })
    expect(log.committedOffset('g', 'in', 0)).toBe(3)

    // A partition the topic lacks fails the whole transaction: nothing of it is written.
    const bad = await (await log.transactionalProducer('w2')).begin()
    await (bad as Transaction & PackedSender).sendPacked(
      packRecords([
        { topic: 'in', key: 'x', value: Buffer.from('x') },
        { topic: 'in', key: 'y', value: null, partition: 9 },
      ]),
    )
    await bad.sendOffsets('g', [{ topic: 'in', partition: 0, offset: '9' }])
    await expect(bad.commit()).rejects.toThrow('topic in has no partition 9')
    expect((await read(log)).has('x')).toBe(false)
    expect(log.committedOffset('g', 'in', 0)).toBe(3)
    await log.close()

    const again = new EmbeddedEventLog({ dir: d, logger: testLogger('embedded-log') })
    expect([...(await read(again)).values()]).toEqual([...got.values()])
    await again.close()
  })

  it('hands a batch over as its stored bytes: unpacked, the same records the handler reads', async () => {
    const log = new EmbeddedEventLog({ dir: dir(), fsync: false, logger: testLogger('embedded-log') })
    await (
      await log.admin()
    ).ensureTopics([
      { name: 'in', partitions: 2, replicationFactor: 1 },
      { name: 'table', partitions: 2, replicationFactor: 1, compacted: true },
    ])
    await (await log.producer()).send(sent)
    const batches: RecordBatch[] = []
    let done!: () => void
    const all = new Promise<void>((r) => (done = r))
    const c = await log.consumer({ groupId: 'g', topics: ['in'], fromBeginning: true, concurrency: 2 })
    void c.run(async (b) => {
      batches.push(b)
      if (batches.reduce((n, x) => n + x.records.length, 0) === 4) done()
    })
    await all
    await c.close()
    for (const b of batches) {
      expect(isPackable(b)).toBe(true)
      if (!isPackable(b)) continue
      const { packed, offsets } = b.pack()
      expect(unpackInRecords(Buffer.from(packed), offsets)).toEqual(b.records)
      expect(b.records.every((r) => r.topic === 'in' && r.partition === b.partition)).toBe(true)
    }
    // Packed first (as for a worker thread), a batch lets go of its records: none is read after.
    const packedFirst: { b: RecordBatch; n: number }[] = []
    let done2!: () => void
    const all2 = new Promise<void>((r) => (done2 = r))
    const c2 = await log.consumer({ groupId: 'g2', topics: ['in'], fromBeginning: true, concurrency: 2 })
    void c2.run(async (b) => {
      if (!isPackable(b)) throw new Error('not packable')
      packedFirst.push({ b, n: b.pack().offsets.length })
      if (packedFirst.reduce((n, x) => n + x.n, 0) === 4) done2()
    })
    await all2
    await c2.close()
    for (const { b } of packedFirst) {
      expect(() => b.records).toThrow(/handed over packed/)
      expect(() => (b as RecordBatch & PackableBatch).pack()).toThrow(/packed already/)
    }
    await log.close()
  })
})

describe('core > embedded log: fetch linger', () => {
  /**
   * Batch sizes a consumer is handed when 4 records reach partition 1 one at a time, `gapMs`
   * apart; with `busy`, a batch of partition 0 that takes 600 ms is running meanwhile.
   */
  async function batchSizes(fetchLingerMs: number, gapMs: number, busy = false): Promise<number[]> {
    const log = new EmbeddedEventLog({
      dir: dir(),
      fsync: false,
      fetchLingerMs,
      logger: testLogger('embedded-log'),
    })
    await (await log.admin()).ensureTopics([{ name: 'l', partitions: 2, replicationFactor: 1 }])
    const sizes: number[] = []
    let seen = 0
    let release!: () => void
    const all = new Promise<void>((r) => (release = r))
    const c = await log.consumer({ groupId: 'g', topics: ['l'], fromBeginning: true, concurrency: 2 })
    void c.run(async (b) => {
      if (b.partition === 0) await new Promise((r) => setTimeout(r, 600))
      else sizes.push(b.records.length)
      if ((seen += b.records.length) === (busy ? 5 : 4)) release()
    })
    const p = await log.producer()
    if (busy) {
      await p.send([{ topic: 'l', partition: 0, key: 'slow', value: Buffer.from('x') }])
      await new Promise((r) => setTimeout(r, 2 * fetchLingerMs + 50)) // partition 0's batch is running
    }
    for (let i = 0; i < 4; i++) {
      await p.send([{ topic: 'l', partition: 1, key: 'k', value: Buffer.from(String(i)) }])
      await new Promise((r) => setTimeout(r, gapMs))
    }
    await all
    await c.close()
    await log.close()
    return sizes
  }

  it('hands an idle consumer the records that arrive within the linger as one batch', async () => {
    // 4 records 5 ms apart: with a 300 ms linger they are one batch; 100 ms apart with none, four.
    expect(await batchSizes(300, 5)).toEqual([4])
    expect(await batchSizes(0, 100)).toEqual([1, 1, 1, 1])
  })

  it('lingers per partition: records of one partition gather while another partition is being handled', async () => {
    expect(await batchSizes(200, 5, true)).toEqual([4])
    expect(await batchSizes(0, 100, true)).toEqual([1, 1, 1, 1])
  })
})

describe('core > embedded log: group commit', () => {
  /** Appends one entry, then four more 10 ms apart; when each of the four was durable (ms after the first append began). */
  async function durableAfter(
    groupCommitMs: number,
  ): Promise<{ first: number; four: number[]; read: number[] }> {
    const d = dir()
    const j = new Journal<{ n: number }>(d, { segmentBytes: 1 << 20, fsync: true, groupCommitMs })
    j.open(() => {})
    const t0 = performance.now()
    await j.append({ n: 0 })
    const first = performance.now() - t0
    const four: Promise<number>[] = []
    for (let n = 1; n <= 4; n++) {
      four.push(j.append({ n }).then(() => performance.now() - t0))
      await new Promise((r) => setTimeout(r, 10))
    }
    const times = await Promise.all(four)
    await j.close()
    const read: number[] = []
    const again = new Journal<{ n: number }>(d, { segmentBytes: 1 << 20, fsync: true })
    again.open((e) => read.push(e.n))
    await again.close()
    return { first, four: times, read }
  }

  it('an append after a quiet moment is synced at once; those within the interval share the next sync', async () => {
    const grouped = await durableAfter(300)
    expect(grouped.first).toBeLessThan(250)
    // The four waited for the sync 300 ms after the first one began, and shared it.
    expect(Math.min(...grouped.four)).toBeGreaterThanOrEqual(295)
    expect(Math.max(...grouped.four) - Math.min(...grouped.four)).toBeLessThan(25)
    expect(grouped.read).toEqual([0, 1, 2, 3, 4])
    // Without it, none waits for such a sync.
    const eager = await durableAfter(0)
    expect(Math.max(...eager.four)).toBeLessThan(295)
    expect(eager.read).toEqual([0, 1, 2, 3, 4])
  })
})

describe('core > embedded log: segments deleted off the thread', () => {
  it('a removed segment is left out at once, gone when its removal resolves, and read back by no one', async () => {
    const d = dir()
    const j = new Journal<{ n: number }>(d, { segmentBytes: 1 << 20, fsync: false })
    j.open(() => {})
    await j.append({ n: 1 })
    const first = j.current()
    const second = await j.roll({ n: 2 })
    await j.append({ n: 3 })
    expect(j.segments()).toEqual([first, second])
    const removal = j.remove(first)
    expect(j.remove(first)).toBe(removal) // asked twice: one unlink
    expect(j.segments()).toEqual([second]) // before the removal has resolved
    await removal
    expect(readdirSync(d).filter((f) => f.endsWith('.seg'))).toEqual([
      `${String(second).padStart(16, '0')}.seg`,
    ])
    await j.remove(second) // the segment being written is never deleted
    expect(j.segments()).toEqual([second])
    // A removal still under way when the journal closes is finished by close (the unlink runs on
    // libuv's pool and is often done already: this checks the outcome, not the wait).
    await j.append({ n: 4 })
    const third = await j.roll({ n: 5 })
    void j.remove(second)
    await j.close()
    expect(readdirSync(d).filter((f) => f.endsWith('.seg'))).toEqual([
      `${String(third).padStart(16, '0')}.seg`,
    ])
    const read: number[] = []
    const again = new Journal<{ n: number }>(d, { segmentBytes: 1 << 20, fsync: false })
    again.open((e) => read.push(e.n))
    await again.close()
    expect(read).toEqual([5])
  })
})

describe('core > event-log contract on the embedded log with group commit', () => {
  eventLogContract(
    () => new EmbeddedEventLog({ dir: dir(), groupCommitMs: 5, logger: testLogger('embedded-log') }),
  )
})

describe('core > embedded log: a partition’s records in columns', () => {
  it('answers as a plain list of records would, through pushes, drops, replacements and merges (random runs)', () => {
    const bufs = [Buffer.from('a'), Buffer.from('b'), Buffer.from('c')]
    for (let run = 0; run < 30; run++) {
      let seed = run + 7
      const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), (seed >>> 8) % n)
      const p = new Partition()
      let model: Rec[] = []
      let next = 0
      const rec = (offset: number): Rec => ({
        buf: bufs[rand(3)]!,
        at: rand(1000),
        end: 1000 + rand(1000),
        offset,
        seg: rand(50),
      })
      for (let step = 0; step < 400; step++) {
        const op = rand(20)
        if (op < 12) {
          // Pushes: most steps, in bursts past the columns' size.
          for (let n = 1 + rand(op < 2 ? 300 : 20); n > 0; n--) {
            const r = rec((next += 1 + rand(3)))
            p.push(r.buf, r.at, r.end, r.offset, r.seg)
            model.push(r)
          }
        } else if (op < 15) {
          const n = rand(model.length + 2)
          p.drop(n)
          model = model.slice(n)
        } else if (op === 15) {
          const kept = model.filter(() => rand(3) > 0)
          p.replace(kept)
          model = kept
        } else if (op === 16 && model.length > 0) {
          // Merged in by offset: some new, some held already (the held one is kept).
          const offs = [...new Set(Array.from({ length: 1 + rand(10) }, () => rand(next + 5)))].sort(
            (a, b) => a - b,
          )
          const rs = offs.map(rec)
          p.merge(rs)
          const held = new Set(model.map((r) => r.offset))
          model = [...model, ...rs.filter((r) => !held.has(r.offset))].sort((a, b) => a.offset - b.offset)
          next = Math.max(next, ...offs)
        } else if (op === 17 && model.length > 0) {
          const i = rand(model.length)
          const seg = 100 + rand(10)
          p.setSeg(i, seg)
          model[i] = { ...model[i]!, seg }
        }
        expect(p.length).toBe(model.length)
        const probe = rand(next + 2)
        const want = model.findIndex((r) => r.offset >= probe)
        expect(p.indexOf(probe)).toBe(want === -1 ? model.length : want)
        if (model.length > 0) {
          const i = rand(model.length)
          expect([p.offsetAt(i), p.segAt(i)]).toEqual([model[i]!.offset, model[i]!.seg])
        }
      }
      expect(p.slice(0, p.length)).toEqual(model)
      expect(p.slice(3, 10)).toEqual(model.slice(3, 10))
    }
  })
})
