/**
 * Kafka's murmur2, exactly as the Java client's `Utils.murmur2` computes it, so that a record
 * keyed by device id lands on the same partition whether Java, Flink, Kafka Streams or
 * fleetstream produced it. Integer arithmetic is 32-bit (Math.imul, `>>>`), as in Java.
 * `start`/`end` hash a range of `data` (a key inside a packed buffer) without a view of it.
 */
export function murmur2(data: Uint8Array, start = 0, end = data.length): number {
  const length = end - start
  const m = 0x5bd1e995
  const r = 24
  let h = (0x9747b28c ^ length) | 0
  const length4 = length >>> 2
  for (let i = 0; i < length4; i++) {
    const i4 = start + i * 4
    let k =
      (data[i4]! & 0xff) |
      ((data[i4 + 1]! & 0xff) << 8) |
      ((data[i4 + 2]! & 0xff) << 16) |
      ((data[i4 + 3]! & 0xff) << 24)
    k = Math.imul(k, m)
    k ^= k >>> r
    k = Math.imul(k, m)
    h = Math.imul(h, m)
    h ^= k
  }
  // Java's `switch (length % 4)` with fall-through, written as cascading ifs.
  const tail = start + (length & ~3)
  const rem = length & 3
  if (rem === 3) h ^= (data[tail + 2]! & 0xff) << 16
  if (rem >= 2) h ^= (data[tail + 1]! & 0xff) << 8
  if (rem >= 1) {
    h ^= data[tail]! & 0xff
    h = Math.imul(h, m)
  }
  h ^= h >>> 13
  h = Math.imul(h, m)
  h ^= h >>> 15
  return h | 0
}

/** Java's `Utils.toPositive`: clears the sign bit (not Math.abs, which differs at MIN_VALUE). */
export function toPositive(n: number): number {
  return n & 0x7fffffff
}

/** The partition the Java client's default partitioner picks for a non-null key. */
export function partitionForKey(key: string | Uint8Array, numPartitions: number): number {
  if (!Number.isInteger(numPartitions) || numPartitions < 1)
    throw new RangeError(`numPartitions must be ≥ 1, got ${numPartitions}`)
  const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key
  return toPositive(murmur2(bytes)) % numPartitions
}
