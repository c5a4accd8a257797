import type { OutRecord } from './log'
import { packRecords, unpackRecords } from './record-pack'

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
})
