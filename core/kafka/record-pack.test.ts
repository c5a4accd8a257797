import type { OutRecord } from './log'
import { murmur2 } from './murmur2'
import {
  keyRange,
  layoutOf,
  packRecords,
  packRefs,
  readInRecord,
  unpackInRecords,
  unpackRecords,
} from './record-pack'

describe('core > kafka > record-pack', () => {
  it('round-trips keys, values, headers, timestamps and partitions across topics', () => {
    const records: OutRecord[] = [
      {
        topic: 'iot.telemetry.raw',
        key: 'dev-1',
        value: Buffer.from([1, 2, 3]),
        timestamp: 1_700_000_000_123,
      },
      { topic: 'iot.deadletter', key: null, value: null },
      {
        topic: 'iot.deadletter',
        key: 'gerät-ü',
        value: Buffer.alloc(0),
        headers: { 'fs-reason': 'bad – JSON', 'fs-bytes': Buffer.from([0, 255]), empty: '' },
        partition: 7,
      },
      {
        topic: 'iot.telemetry.raw',
        key: '',
        value: Buffer.from('x'.repeat(70_000)),
        partition: 0,
        timestamp: 0,
      },
    ]
    const packed = packRecords(records)
    expect(packed.byteOffset).toBe(0)
    expect(packed.buffer.byteLength).toBe(packed.length)
    const back = unpackRecords(packed)
    expect(back).toEqual(records)
    expect(Buffer.isBuffer(back[2]!.headers!['fs-bytes'])).toBe(true)
  })

  it('packs an empty send', () => {
    expect(unpackRecords(packRecords([]))).toEqual([])
  })

  it('refuses a buffer that is cut short or has bytes left over', () => {
    const packed = packRecords([{ topic: 't', key: 'k', value: Buffer.from('v') }])
    expect(() => unpackRecords(packed.subarray(0, packed.length - 1))).toThrow(/out of range/)
    expect(() => unpackRecords(Buffer.concat([packed, Buffer.from([0])]))).toThrow(/end at/)
  })

  describe('records held in place', () => {
    const records: OutRecord[] = [
      { topic: 'a', key: 'dev-1', value: Buffer.from('1'), headers: { t: 'text', b: Buffer.from([7]) } },
      { topic: 'b', key: null, value: null, partition: 3, timestamp: 5 },
      { topic: 'a', key: 'gerät-ü', value: Buffer.alloc(0), partition: 2, timestamp: 6 },
      { topic: 'b', key: '', value: Buffer.from('x'), partition: 0, timestamp: 7 },
    ]
    const packed = packRecords(records)
    const l = layoutOf(packed)
    const refs = Array.from({ length: l.count }, (_, i) => ({ buf: packed, at: l.start[i]!, end: l.end[i]! }))

    it('reads where each record is without reading the records', () => {
      expect(l.topics).toEqual(['a', 'b'])
      expect([...l.topic]).toEqual([0, 1, 0, 1])
      expect(l.start[0]).toBe(6 + 3 + 3)
      expect(l.end[3]).toBe(packed.length)
      for (let i = 1; i < l.count; i++) expect(l.start[i]).toBe(l.end[i - 1])
    })

    it("finds a key's bytes (a null key as an empty range) and hashes them in place", () => {
      expect(keyRange(refs[1]!)[0]).toBeGreaterThan(keyRange(refs[1]!)[1])
      const [s, e] = keyRange(refs[2]!)
      expect(packed.toString('utf8', s, e)).toBe('gerät-ü')
      expect(murmur2(packed, s, e)).toBe(murmur2(Buffer.from('gerät-ü')))
      const [s3, e3] = keyRange(refs[3]!)
      expect(e3 - s3).toBe(0)
    })

    it('packs records of one topic as they are, and reads them as consumed records', () => {
      const b = packRefs('b', [refs[1]!, refs[3]!])
      expect(unpackRecords(b)).toEqual([records[1], records[3]])
      const got = unpackInRecords(b, new Float64Array([10, 11]))
      expect(got).toEqual([
        { topic: 'b', partition: 3, offset: '10', key: null, value: null, headers: {}, timestamp: 5 },
        {
          topic: 'b',
          partition: 0,
          offset: '11',
          key: '',
          value: Buffer.from('x'),
          headers: {},
          timestamp: 7,
        },
      ])
      // String headers are read as Buffers, as a consumer gets them from Kafka.
      expect(readInRecord(refs[0]!, 'a', 4)).toMatchObject({
        offset: '4',
        key: 'dev-1',
        headers: { t: Buffer.from('text'), b: Buffer.from([7]) },
      })
      expect(Buffer.isBuffer(readInRecord(refs[0]!, 'a', 4).headers.t)).toBe(true)
    })

    it('refuses a layout that is cut short, has bytes left over or names a topic not in the table', () => {
      expect(() => layoutOf(packed.subarray(0, packed.length - 1))).toThrow(/out of range|past the end/)
      expect(() => layoutOf(Buffer.concat([packed, Buffer.from([0])]))).toThrow(/end at/)
      const wrong = Buffer.from(packed)
      wrong.writeUInt16LE(9, l.start[0]!)
      expect(() => layoutOf(wrong)).toThrow(/not in the table/)
    })
  })
})
