import type { InRecord, OutHeaders, OutRecord } from './log'

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

/** What `readBody` reads of one record: all but its topic and partition. Reused between records. */
interface Body {
  key: string | null
  value: Buffer | null
  headers: OutHeaders | undefined
  /** NaN: none. */
  timestamp: number
  /** Where the body ends (the next record begins). */
  end: number
}

/**
 * Reads the body of a record (timestamp, key, value, headers) that starts at `at` into `into`.
 * Values and byte headers are views of `buf`; string headers become Buffers with `bytes`.
 */
function readBody(buf: Buffer, at: number, into: Body, bytes: boolean): void {
  into.timestamp = buf.readDoubleLE(at)
  at += 8
  const keyLen = buf.readInt32LE(at)
  at += 4
  into.key = keyLen < 0 ? null : buf.toString('utf8', at, at + keyLen)
  if (keyLen > 0) at += keyLen
  const valueLen = buf.readInt32LE(at)
  at += 4
  into.value = valueLen < 0 ? null : buf.subarray(at, at + valueLen)
  if (valueLen > 0) at += valueLen
  if (at > buf.length) throw new RangeError(`packed record runs past the end of ${buf.length} bytes`)
  const headerCount = buf.readUInt16LE(at)
  at += 2
  into.headers = undefined
  if (headerCount > 0) {
    const headers: OutHeaders = {}
    for (let h = 0; h < headerCount; h++) {
      const kn = buf.readUInt16LE(at)
      const name = buf.toString('utf8', at + 2, at + 2 + kn)
      at += 2 + kn
      const kind = buf.readUInt8(at)
      const vn = buf.readInt32LE(at + 1)
      at += 5
      if (at + vn > buf.length) throw new RangeError(`packed header runs past the end of ${buf.length} bytes`)
      headers[name] =
        kind === 0
          ? bytes
            ? Buffer.from(buf.toString('utf8', at, at + vn))
            : buf.toString('utf8', at, at + vn)
          : buf.subarray(at, at + vn)
      at += vn
    }
    into.headers = headers
  }
  into.end = at
}

/** Where a body ends, read from its lengths only (no strings, no views). */
function bodyEnd(buf: Buffer, at: number): number {
  at += 8
  const keyLen = buf.readInt32LE(at)
  at += 4 + Math.max(0, keyLen)
  const valueLen = buf.readInt32LE(at)
  at += 4 + Math.max(0, valueLen)
  const headerCount = buf.readUInt16LE(at)
  at += 2
  for (let h = 0; h < headerCount; h++) {
    at += 2 + buf.readUInt16LE(at)
    at += 5 + buf.readInt32LE(at + 1)
  }
  if (at > buf.length) throw new RangeError(`packed record runs past the end of ${buf.length} bytes`)
  return at
}

/** The topic table at the head of a packed buffer, and where the first record starts. */
function readTopics(buf: Buffer): { count: number; topics: string[]; at: number } {
  const count = buf.readUInt32LE(0)
  const topicCount = buf.readUInt16LE(4)
  let at = 6
  const topics: string[] = []
  for (let i = 0; i < topicCount; i++) {
    const n = buf.readUInt16LE(at)
    topics.push(buf.toString('utf8', at + 2, at + 2 + n))
    at += 2 + n
  }
  return { count, topics, at }
}

const checkEnd = (at: number, buf: Buffer) => {
  if (at !== buf.length) throw new RangeError(`packed records end at ${at} of ${buf.length} bytes`)
}

const topicAt = (topics: string[], buf: Buffer, at: number): string => {
  const topic = topics[buf.readUInt16LE(at)]
  if (topic === undefined) throw new RangeError('packed record names a topic that is not in the table')
  return topic
}

/** Reads records packed by packRecords. Values and byte headers are views of `buf`, not copies. */
export function unpackRecords(buf: Buffer): OutRecord[] {
  const { count, topics, at: first } = readTopics(buf)
  const body: Body = { key: null, value: null, headers: undefined, timestamp: NaN, end: 0 }
  const records: OutRecord[] = new Array<OutRecord>(count)
  let at = first
  for (let i = 0; i < count; i++) {
    const topic = topicAt(topics, buf, at)
    const partition = buf.readInt32LE(at + 2)
    readBody(buf, at + 6, body, false)
    at = body.end
    const r: OutRecord = { topic, key: body.key, value: body.value }
    if (body.headers) r.headers = body.headers
    if (!Number.isNaN(body.timestamp)) r.timestamp = body.timestamp
    if (partition >= 0) r.partition = partition
    records[i] = r
  }
  checkEnd(at, buf)
  return records
}

/** Records without headers share one frozen empty object. */
const NO_HEADERS: Record<string, Buffer> = Object.freeze({}) as Record<string, Buffer>

/**
 * Reads packed records as consumed records, the offset of record i being `offsets[i]`: one
 * object per record, headers as Buffers (as consumers get them from Kafka).
 */
export function unpackInRecords(buf: Buffer, offsets: Float64Array): InRecord[] {
  const { count, topics, at: first } = readTopics(buf)
  const body: Body = { key: null, value: null, headers: undefined, timestamp: NaN, end: 0 }
  const records: InRecord[] = new Array<InRecord>(count)
  let at = first
  for (let i = 0; i < count; i++) {
    const topic = topicAt(topics, buf, at)
    const partition = buf.readInt32LE(at + 2)
    readBody(buf, at + 6, body, true)
    at = body.end
    records[i] = consumed(body, topic, partition, offsets[i]!)
  }
  checkEnd(at, buf)
  return records
}

/** A body read with headers as Buffers, as a consumed record. */
const consumed = (body: Body, topic: string, partition: number, offset: number): InRecord => ({
  topic,
  partition,
  offset: String(offset),
  key: body.key,
  value: body.value,
  headers: (body.headers as Record<string, Buffer> | undefined) ?? NO_HEADERS,
  timestamp: body.timestamp,
})

/** Where each record of a packed buffer is: its topic's index, and the byte where it starts
 * (its u16 topic index; its i32 partition follows, then its body) and ends. */
export interface PackedLayout {
  topics: string[]
  count: number
  topic: Uint16Array
  start: Uint32Array
  end: Uint32Array
}

/** Reads the layout of a packed buffer from its lengths, without building any record. */
export function layoutOf(buf: Buffer): PackedLayout {
  const { count, topics, at: first } = readTopics(buf)
  const topic = new Uint16Array(count)
  const start = new Uint32Array(count)
  const end = new Uint32Array(count)
  let at = first
  for (let i = 0; i < count; i++) {
    topic[i] = buf.readUInt16LE(at)
    if (topic[i]! >= topics.length)
      throw new RangeError('packed record names a topic that is not in the table')
    start[i] = at
    at = bodyEnd(buf, at + 6)
    end[i] = at
  }
  checkEnd(at, buf)
  return { topics, count, topic, start, end }
}

/** A packed record held in place: `buf` from `at` (its u16 topic index) to `end`. */
export interface PackedRef {
  buf: Buffer
  at: number
  end: number
}

/** The key of a packed record as a range of its buffer ([start, end); start > end: a null key). */
export function keyRange(r: PackedRef): [number, number] {
  const n = r.buf.readInt32LE(r.at + 14)
  return n < 0 ? [1, 0] : [r.at + 18, r.at + 18 + n]
}

/** Reads one packed record held in place as a consumed record. */
export function readInRecord(r: PackedRef, topic: string, offset: number): InRecord {
  const body: Body = { key: null, value: null, headers: undefined, timestamp: NaN, end: 0 }
  readBody(r.buf, r.at + 6, body, true)
  return consumed(body, topic, r.buf.readInt32LE(r.at + 2), offset)
}

/**
 * Packs records of one topic held in place (as packRecords would have packed them, the topic
 * the only one in the table): each record's bytes copied as they are, none read.
 */
export function packRefs(topic: string, refs: readonly PackedRef[]): Buffer {
  const name = Buffer.from(topic)
  let size = 6 + 2 + name.length
  for (const r of refs) size += r.end - r.at
  const buf = Buffer.from(new ArrayBuffer(size))
  buf.writeUInt32LE(refs.length, 0)
  buf.writeUInt16LE(1, 4)
  buf.writeUInt16LE(name.length, 6)
  name.copy(buf, 8)
  let at = 8 + name.length
  for (const r of refs) {
    at += r.buf.copy(buf, at, r.at, r.end)
    buf.writeUInt16LE(0, at - (r.end - r.at))
  }
  return buf
}

function writeShortString(buf: Buffer, at: number, s: string): number {
  const n = buf.write(s, at + 2)
  if (n > 0xffff) throw new RangeError(`name of ${n} bytes is too long to pack`)
  buf.writeUInt16LE(n, at)
  return at + 2 + n
}

/** A batch that hands its records over packed, without reading them (the embedded log's). */
export interface PackableBatch {
  /** The batch's records packed, and their offsets in order. */
  pack(): { packed: ArrayBuffer; offsets: Float64Array }
}

export const isPackable = (b: object): b is PackableBatch =>
  typeof (b as Partial<PackableBatch>).pack === 'function'

/** A producer or transaction that takes records packed, as they crossed from a worker thread,
 * and writes them without reading them into objects (the embedded log's). */
export interface PackedSender {
  sendPacked(packed: Buffer): Promise<unknown>
}

export const takesPacked = (o: object): o is PackedSender =>
  typeof (o as Partial<PackedSender>).sendPacked === 'function'
