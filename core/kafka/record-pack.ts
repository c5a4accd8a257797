import type { OutHeaders, OutRecord } from './log'

/**
 * Packs records into one buffer, and back: how records cross to the producer thread. Handing
 * a worker thread the records themselves would copy, for each value Buffer, the whole 8 KiB
 * pool slab it is a view of (structured clone copies the backing ArrayBuffer); one packed
 * buffer is copied once and transferred without a copy.
 *
 * Layout (little-endian): u32 record count, u16 topic count, topics (u16 length + UTF-8);
 * then per record: u16 topic index, i32 partition (-1: none), f64 timestamp (NaN: none),
 * key and value as i32 length (-1: null) + bytes, u16 header count, and per header: u16 key
 * length + UTF-8, u8 kind (0: string, 1: bytes), i32 length + bytes.
 */
export function packRecords(records: readonly OutRecord[]): Buffer {
  const topics = new Map<string, number>()
  let size = 6
  for (const r of records) {
    if (!topics.has(r.topic)) {
      topics.set(r.topic, topics.size)
      size += 2 + Buffer.byteLength(r.topic)
    }
    size += 2 + 4 + 8 + 4 + 4 + 2
    if (r.key !== null) size += Buffer.byteLength(r.key)
    if (r.value !== null) size += r.value.length
    if (r.headers) {
      for (const k in r.headers) {
        const v = r.headers[k]!
        size += 2 + Buffer.byteLength(k) + 1 + 4 + (typeof v === 'string' ? Buffer.byteLength(v) : v.length)
      }
    }
  }
  if (topics.size > 0xffff) throw new RangeError(`too many topics in one send (${topics.size})`)
  // Its own ArrayBuffer (not a pool slab), so it can be transferred.
  const buf = Buffer.from(new ArrayBuffer(size))
  let at = buf.writeUInt32LE(records.length, 0)
  at = buf.writeUInt16LE(topics.size, at)
  for (const t of topics.keys()) at = writeShortString(buf, at, t)
  for (const r of records) {
    at = buf.writeUInt16LE(topics.get(r.topic)!, at)
    at = buf.writeInt32LE(r.partition ?? -1, at)
    at = buf.writeDoubleLE(r.timestamp ?? NaN, at)
    if (r.key === null) at = buf.writeInt32LE(-1, at)
    else {
      const n = buf.write(r.key, at + 4)
      buf.writeInt32LE(n, at)
      at += 4 + n
    }
    if (r.value === null) at = buf.writeInt32LE(-1, at)
    else {
      at = buf.writeInt32LE(r.value.length, at)
      at += r.value.copy(buf, at)
    }
    const headers = r.headers
    const names = headers ? Object.keys(headers) : []
    if (names.length > 0xffff) throw new RangeError(`too many headers on one record (${names.length})`)
    at = buf.writeUInt16LE(names.length, at)
    for (const k of names) {
      const v = headers![k]!
      at = writeShortString(buf, at, k)
      if (typeof v === 'string') {
        at = buf.writeUInt8(0, at)
        const n = buf.write(v, at + 4)
        buf.writeInt32LE(n, at)
        at += 4 + n
      } else {
        at = buf.writeUInt8(1, at)
        at = buf.writeInt32LE(v.length, at)
        at += v.copy(buf, at)
      }
    }
  }
  return buf
}

/** Reads records packed by packRecords. Values and byte headers are views of `buf`, not copies. */
export function unpackRecords(buf: Buffer): OutRecord[] {
  let at = 0
  const count = buf.readUInt32LE(at)
  at += 4
  const topicCount = buf.readUInt16LE(at)
  at += 2
  const topics: string[] = []
  for (let i = 0; i < topicCount; i++) {
    const n = buf.readUInt16LE(at)
    topics.push(buf.toString('utf8', at + 2, at + 2 + n))
    at += 2 + n
  }
  const records: OutRecord[] = new Array<OutRecord>(count)
  for (let i = 0; i < count; i++) {
    const topic = topics[buf.readUInt16LE(at)]
    if (topic === undefined) throw new RangeError('packed record names a topic that is not in the table')
    const partition = buf.readInt32LE(at + 2)
    const timestamp = buf.readDoubleLE(at + 6)
    at += 14
    const keyLen = buf.readInt32LE(at)
    at += 4
    const key = keyLen < 0 ? null : buf.toString('utf8', at, at + keyLen)
    if (keyLen > 0) at += keyLen
    const valueLen = buf.readInt32LE(at)
    at += 4
    const value = valueLen < 0 ? null : buf.subarray(at, at + valueLen)
    if (valueLen > 0) at += valueLen
    const headerCount = buf.readUInt16LE(at)
    at += 2
    let headers: OutHeaders | undefined
    if (headerCount > 0) {
      headers = {}
      for (let h = 0; h < headerCount; h++) {
        const kn = buf.readUInt16LE(at)
        const name = buf.toString('utf8', at + 2, at + 2 + kn)
        at += 2 + kn
        const kind = buf.readUInt8(at)
        const vn = buf.readInt32LE(at + 1)
        at += 5
        headers[name] = kind === 0 ? buf.toString('utf8', at, at + vn) : buf.subarray(at, at + vn)
        at += vn
      }
    }
    const r: OutRecord = { topic, key, value }
    if (headers) r.headers = headers
    if (!Number.isNaN(timestamp)) r.timestamp = timestamp
    if (partition >= 0) r.partition = partition
    records[i] = r
  }
  if (at !== buf.length) throw new RangeError(`packed records end at ${at} of ${buf.length} bytes`)
  return records
}

function writeShortString(buf: Buffer, at: number, s: string): number {
  const n = buf.write(s, at + 2)
  if (n > 0xffff) throw new RangeError(`name of ${n} bytes is too long to pack`)
  buf.writeUInt16LE(n, at)
  return at + 2 + n
}
