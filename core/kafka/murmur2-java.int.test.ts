import { execFileSync } from 'node:child_process'
import path from 'node:path'
import fc from 'fast-check'
import { serverEnv } from '../../test/servers'
import { partitionForKey } from './murmur2'

const JAVA_SOURCE = path.resolve(__dirname, '../../test/java/PartitionForKey.java')

/** Partitions chosen by the real Java producer's BuiltInPartitioner (the jars of the test broker). */
function javaPartitions(keys: string[], n: number): number[] {
  const out = execFileSync('java', ['-cp', `${serverEnv().FS_KAFKA_LIB}/*`, JAVA_SOURCE, String(n)], {
    input: `${keys.join('\n')}\n`,
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
  })
  return out.trim().split('\n').map(Number)
}

describe('core > kafka > murmur2 agrees with the Java client [kafka]', () => {
  // Keys without line breaks (the Java side reads lines): device-id shapes, unicode, random text.
  const keys = [
    ...Array.from({ length: 1000 }, (_, i) => `device-${i}`),
    'capteur-é',
    'датчик-7',
    '传感器-1',
    '🚜-tractor',
    ...fc
      .sample(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }), { numRuns: 1000, seed: 42 })
      .filter((k) => !/[\r\n]/.test(k)),
  ]

  it.each([1, 6, 7, 12, 100])('picks the same partition for %i partitions on 2,000 keys', (n) => {
    const java = javaPartitions(keys, n)
    expect(java).toHaveLength(keys.length)
    expect(keys.map((k) => partitionForKey(k, n))).toEqual(java)
  })
})
