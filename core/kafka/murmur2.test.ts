import fc from 'fast-check'
import { murmur2, partitionForKey, toPositive } from './murmur2'

describe('core > kafka > murmur2', () => {
  // Vectors from the Java client's UtilsTest.testMurmur2 (org.apache.kafka.common.utils).
  const javaVectors: [Uint8Array, number][] = [
    [Buffer.from('21'), -973932308],
    [Buffer.from('foobar'), -790332482],
    [Buffer.from('a-little-bit-long-string'), -985981536],
    [Buffer.from('a-little-bit-longer-string'), -1486304829],
    [Buffer.from('lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8'), -58897971],
    [new Uint8Array([97, 98, 99]), 479470107],
  ]
  it.each(javaVectors)('matches the Java client for %s', (bytes, expected) => {
    expect(murmur2(bytes)).toBe(expected)
  })

  it('hashes a range of a buffer as it hashes the bytes of that range', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.nat(40), fc.nat(40), (bytes, a, b) => {
        const [s, e] = [Math.min(a, b, bytes.length), Math.min(Math.max(a, b), bytes.length)]
        expect(murmur2(bytes, s, e)).toBe(murmur2(bytes.slice(s, e)))
      }),
    )
  })

  it('toPositive clears the sign bit as Java does (not Math.abs)', () => {
    expect(toPositive(-2147483648)).toBe(0)
    expect(toPositive(-1)).toBe(2147483647)
    expect(toPositive(5)).toBe(5)
  })

  it('partitionForKey hashes the UTF-8 bytes of a string key', () => {
    expect(partitionForKey('foobar', 7)).toBe(toPositive(-790332482) % 7)
    expect(partitionForKey('capteur-é', 10)).toBe(partitionForKey(Buffer.from('capteur-é', 'utf8'), 10))
  })

  it('always lands in [0, n)', () => {
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: 1, max: 1000 }), (key, n) => {
        const p = partitionForKey(key, n)
        return Number.isInteger(p) && p >= 0 && p < n
      }),
    )
  })

  it('rejects a partition count below 1', () => {
    expect(() => partitionForKey('a', 0)).toThrow(RangeError)
  })
})

describe('core > kafka > murmur2 partitioner for kafkajs', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { murmur2Partitioner } = require('./kafkajs-log') as typeof import('./kafkajs-log')
  const meta = Array.from({ length: 6 }, (_, partitionId) => ({ partitionId }))

  it('honours an explicit partition (kafkajs always asks the partitioner)', () => {
    expect(
      murmur2Partitioner()({
        partitionMetadata: meta,
        message: { key: 'device-1', value: null, partition: 4 },
      }),
    ).toBe(4)
  })

  it('hashes the key otherwise, as the Java client does', () => {
    expect(murmur2Partitioner()({ partitionMetadata: meta, message: { key: 'foobar', value: null } })).toBe(
      partitionForKey('foobar', 6),
    )
  })
})
