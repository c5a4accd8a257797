import type { OutRecord } from '../../core/kafka/log'
import { RecordingProducer } from '../../test/recording-producer'
import { PushbackError } from '../errors'
import { DurableWriter } from './writer'

const rec = (key: string, v: string): OutRecord => ({ topic: 't', key, value: Buffer.from(v) })
const opts = { maxBatchRecords: 100, lingerMs: 1, maxBufferedRecords: 1000 }

describe('bridge > ingest > durable writer', () => {
  it('writes in reservation order even when an earlier slot is filled later', async () => {
    const p = new RecordingProducer()
    const w = new DurableWriter(p, opts)
    const a = w.reserve()
    const b = w.reserve()
    const bDone = b.fill([rec('d1', 'second')])
    await new Promise((r) => setTimeout(r, 10))
    expect(p.records).toEqual([]) // b waits for a
    const aDone = a.fill([rec('d1', 'first')])
    await Promise.all([aDone, bDone])
    expect(p.records.map((r) => r.value!.toString())).toEqual(['first', 'second'])
  })

  it('batches many slots into one write, up to maxBatchRecords', async () => {
    const p = new RecordingProducer()
    const w = new DurableWriter(p, { ...opts, maxBatchRecords: 10 })
    const done = Array.from({ length: 25 }, (_, i) => w.reserve().fill([rec(`d${i % 3}`, String(i))]))
    const metas = await Promise.all(done)
    expect(p.batches.map((b) => b.length)).toEqual([10, 10, 5])
    expect(p.records.map((r) => Number(r.value!.toString()))).toEqual(Array.from({ length: 25 }, (_, i) => i))
    expect(metas.map((m) => m[0]!.offset)).toEqual(Array.from({ length: 25 }, (_, i) => String(i)))
  })

  it('keeps one write in flight and fills the next batch meanwhile', async () => {
    const p = new RecordingProducer()
    p.hold()
    const w = new DurableWriter(p, opts)
    const first = w.reserve().fill([rec('a', '1')])
    await new Promise((r) => setTimeout(r, 5))
    const rest = Array.from({ length: 5 }, (_, i) => w.reserve().fill([rec('a', String(i + 2))]))
    expect(w.bufferedRecords).toBe(6)
    p.release()
    await Promise.all([first, ...rest])
    expect(p.batches.map((b) => b.length)).toEqual([1, 5])
    expect(w.bufferedRecords).toBe(0)
  })

  it('pushes back when the buffer is full, and takes more once it drains', async () => {
    const p = new RecordingProducer()
    p.hold()
    const w = new DurableWriter(p, { ...opts, maxBufferedRecords: 3 })
    const pending = [w.reserve().fill([rec('a', '1'), rec('a', '2')]), w.reserve().fill([rec('a', '3')])]
    expect(() => w.reserve()).toThrow(PushbackError)
    p.release()
    await Promise.all(pending)
    expect(() => w.reserve().cancel()).not.toThrow()
  })

  it('fails every slot of a failed write, and goes on with the next', async () => {
    const p = new RecordingProducer()
    p.failWith = new Error('broker gone')
    const w = new DurableWriter(p, opts)
    const a = w.reserve().fill([rec('a', '1')])
    const b = w.reserve().fill([rec('b', '2')])
    await expect(a).rejects.toThrow('broker gone')
    await expect(b).rejects.toThrow('broker gone')
    p.failWith = undefined
    await w.reserve().fill([rec('c', '3')])
    expect(p.records.map((r) => r.key)).toEqual(['c'])
    expect(w.bufferedRecords).toBe(0)
  })

  it('a cancelled or empty slot does not hold back the ones behind it', async () => {
    const p = new RecordingProducer()
    const w = new DurableWriter(p, opts)
    const a = w.reserve()
    const b = w.reserve()
    const c = w.reserve()
    const cDone = c.fill([rec('c', '3')])
    a.cancel()
    await b.fill([])
    await cDone
    expect(p.records.map((r) => r.key)).toEqual(['c'])
  })

  it('fails a slot not durable within the ack timeout; the write itself goes on', async () => {
    const p = new RecordingProducer()
    p.hold()
    const w = new DurableWriter(p, { ...opts, ackTimeoutMs: 50 })
    const late = w.reserve().fill([rec('a', '1')])
    await expect(late).rejects.toThrow(/did not confirm within 50 ms/)
    p.release()
    await w.reserve().fill([rec('b', '2')])
    expect(p.records.map((r) => r.key)).toEqual(['a', 'b'])
  })

  it('resolves a cancelled slot with nothing written', async () => {
    const w = new DurableWriter(new RecordingProducer(), opts)
    const s = w.reserve()
    s.cancel()
    await expect(s.done).resolves.toEqual([])
    expect(w.bufferedRecords).toBe(0)
  })

  it('close writes what is buffered, then refuses new slots', async () => {
    const p = new RecordingProducer()
    const w = new DurableWriter(p, { ...opts, lingerMs: 1000 })
    const done = w.reserve().fill([rec('a', '1')])
    await w.close()
    await done
    expect(p.records).toHaveLength(1)
    expect(() => w.reserve()).toThrow(PushbackError)
  })
})
