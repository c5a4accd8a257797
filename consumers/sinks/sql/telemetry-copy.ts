import avro from 'avsc'
import { loadBundledSchema } from '../../../core/envelope/registry'
import { WIRE_HEADER_LENGTH } from '../../../core/envelope/wire'
import { CopyWriter } from './pg-binary-copy'
import type { LastSeen } from './tables'

/**
 * The PostgreSQL sink's fast path for telemetry: Avro payloads of the bundled Telemetry schema
 * (schemas/telemetry.avsc) turned straight into binary COPY tuples of the `telemetry` table,
 * with no JavaScript object per reading in between (decoding each reading with avsc and then
 * encoding it again cost the sink more CPU than Kafka and PostgreSQL together: see
 * bench/results/sink-postgres.json). Strings are copied as their UTF-8 bytes; the two maps
 * become JSON text for jsonb, escaped only where JSON needs it.
 *
 * It reads exactly one schema, the bundled one, checked field by field when the module loads
 * (`TELEMETRY_SCHEMA_SUPPORTED`); anything it does not expect — a truncated or malformed payload,
 * an unsafe 64-bit integer — throws, and the sink then takes its general path (avsc decode,
 * COPY or INSERT), which refuses the same readings with avsc's own errors. Whatever it lets
 * through is stored exactly as the general path stores it: consumers/sinks/sql/telemetry-copy.test.ts
 * compares the two byte for byte, and PostgreSQL checks the UTF-8 it is given.
 */

/** Column order of the tuples: TELEMETRY's columns (tables.ts), the order COPY names them in. */
export const TELEMETRY_COPY_COLUMNS = [
  'device_id',
  'ts',
  'seq',
  'tenant',
  'received_at',
  'source',
  'metrics',
  'meta',
] as const

/** The shape this transcoder reads, in avsc's canonical form. */
const SUPPORTED = JSON.stringify(
  avro.Type.forSchema({
    type: 'record',
    name: 'Telemetry',
    namespace: 'dev.fleetstream',
    fields: [
      { name: 'deviceId', type: 'string' },
      { name: 'tenant', type: ['null', 'string'], default: null },
      { name: 'ts', type: { type: 'long', logicalType: 'timestamp-millis' } },
      { name: 'receivedAt', type: { type: 'long', logicalType: 'timestamp-millis' } },
      { name: 'seq', type: ['null', 'long'], default: null },
      { name: 'metrics', type: { type: 'map', values: ['double', 'boolean', 'string'] } },
      { name: 'meta', type: { type: 'map', values: 'string' }, default: {} },
      { name: 'source', type: { type: 'enum', name: 'Source', symbols: ['mqtt', 'http', 'bridge'] } },
    ],
  } as avro.Schema).schema(),
)

/** Whether schemas/telemetry.avsc is the schema this module reads (a schema change turns the fast path off). */
export const TELEMETRY_SCHEMA_SUPPORTED =
  JSON.stringify(avro.Type.forSchema(loadBundledSchema('telemetry.avsc')).schema()) === SUPPORTED

/** avsc's largest long (it refuses ±2^53 − 1 too). */
const MAX_SAFE_LONG = 9_007_199_254_740_990
/** The Source enum's symbols, by index. */
export const SOURCE_NAMES = ['mqtt', 'http', 'bridge'] as const
const SOURCES = SOURCE_NAMES.map((s) => Buffer.from(s))

/** A payload this transcoder cannot take (the general path decides what it is). */
export class TranscodeError extends Error {}

/** Reads Avro's binary encoding from one payload. */
export class AvroReader {
  constructor(
    readonly buf: Buffer,
    public at: number,
  ) {}

  /** A zigzag varint long; throws beyond ±(2^53 − 2), where avsc stops too. */
  long(): number {
    const b = this.buf
    const first = b[this.at]
    if (first !== undefined && first < 0x80) {
      this.at++
      return first & 1 ? -(first + 1) / 2 : first / 2
    }
    // Exact in two halves: the low 28 bits (4 bytes) and what comes after.
    let lo = 0
    let hi = 0
    let scale = 1
    for (let i = 0; ; i++) {
      if (this.at >= b.length || i > 7) throw new TranscodeError('bad or unsafe long')
      const byte = b[this.at++]!
      if (i === 4) scale = 1
      if (i < 4) lo += (byte & 0x7f) * scale
      else hi += (byte & 0x7f) * scale
      if (byte < 0x80) break
      scale *= 128
    }
    const half = hi * 2 ** 27 + Math.floor(lo / 2) // the zigzag value without its sign bit
    if (half > MAX_SAFE_LONG) throw new TranscodeError('unsafe long')
    return lo % 2 === 0 ? half : -half - 1
  }

  /** The [start, end) byte range of a string. */
  string(): number {
    const len = this.long()
    const start = this.at
    if (len < 0 || start + len > this.buf.length) throw new TranscodeError('bad string length')
    this.at = start + len
    return start
  }

  /** Item count of the next map block (0 at the end); skips a negative count's byte size. */
  block(): number {
    const n = this.long()
    if (n >= 0) return n
    this.long()
    return -n
  }
}

/** Writes the JSON string of bytes [s, e) of `src` (a key or a string value). */
export function jsonString(w: CopyWriter, src: Buffer, s: number, e: number): void {
  for (let i = s; i < e; i++) {
    const c = src[i]!
    if (c < 0x20 || c === 0x22 || c === 0x5c) {
      w.text(JSON.stringify(src.toString('utf8', s, e)))
      return
    }
  }
  w.byte(0x22)
  w.slice(src, s, e)
  w.byte(0x22)
}

/** A map as a jsonb field: version byte 1 then the JSON object. */
function mapField(w: CopyWriter, r: AvroReader, values: 'union' | 'string'): void {
  const lengthAt = w.beginField()
  w.byte(1)
  mapJson(w, r, values)
  w.endField(lengthAt)
}

/**
 * Writes an Avro map as JSON text, its entries in the order they were written. `asText`: the
 * text is stored as it is (SQLite), so it must be the text JSON.stringify makes of the object
 * avsc decodes: a map with a key JavaScript orders before the others (one that starts with a
 * digit, as an array index may) or a key twice (the object keeps the last value) throws, for the
 * general path to decide. jsonb (PostgreSQL) orders keys and keeps the last value itself.
 */
export function mapJson(w: CopyWriter, r: AvroReader, values: 'union' | 'string', asText = false): void {
  w.byte(0x7b) // {
  let first = true
  const keys: string[] | undefined = asText ? [] : undefined
  for (let n = r.block(); n > 0; n = r.block()) {
    for (let k = 0; k < n; k++) {
      if (!first) w.byte(0x2c) // ,
      first = false
      const ks = r.string()
      if (r.at - ks === 9 && r.buf.toString('latin1', ks, r.at) === '__proto__')
        throw new TranscodeError('a __proto__ key (avsc drops it from the object: the general path decides)')
      if (keys) {
        const c = r.buf[ks]
        if (c !== undefined && c >= 0x30 && c <= 0x39)
          throw new TranscodeError('a key that starts with a digit')
        const key = r.buf.toString('utf8', ks, r.at)
        if (keys.includes(key)) throw new TranscodeError('a key twice in one map')
        keys.push(key)
      }
      jsonString(w, r.buf, ks, r.at)
      w.byte(0x3a) // :
      const branch = values === 'string' ? 2 : r.long()
      if (branch === 0) {
        if (r.at + 8 > r.buf.length) throw new TranscodeError('truncated double')
        const v = r.buf.readDoubleLE(r.at)
        r.at += 8
        w.ascii(Number.isFinite(v) ? String(v) : 'null')
      } else if (branch === 1) {
        const v = r.buf[r.at++]
        if (v !== 0 && v !== 1) throw new TranscodeError('bad boolean')
        w.ascii(v === 1 ? 'true' : 'false')
      } else if (branch === 2) {
        const vs = r.string()
        jsonString(w, r.buf, vs, r.at)
      } else throw new TranscodeError('bad union branch')
    }
  }
  w.byte(0x7d) // }
}

/** The fields before the maps: the device id and tenant as byte ranges (tenant -1: null). */
interface Head {
  ds: number
  de: number
  tenantAt: number
  tenantEnd: number
  ts: number
  receivedAt: number
  /** -1: none (as the table stores it). */
  seq: number
}

function readHead(r: AvroReader): Head {
  const ds = r.string()
  const de = r.at
  if (de === ds) throw new TranscodeError('empty device id')
  let tenantAt = -1
  let tenantEnd = -1
  const tb = r.long()
  if (tb === 1) {
    tenantAt = r.string()
    tenantEnd = r.at
  } else if (tb !== 0) throw new TranscodeError('bad union branch')
  const ts = r.long()
  const receivedAt = r.long()
  const sb = r.long()
  let seq = -1
  if (sb === 1) seq = r.long()
  else if (sb !== 0) throw new TranscodeError('bad union branch')
  return { ds, de, tenantAt, tenantEnd, ts, receivedAt, seq }
}

/** As the general path: the latest time per device, and the tenant of its last reading. */
function noteSeen(seen: Map<string, LastSeen>, deviceId: string, tenant: string | null, ts: number): void {
  const prev = seen.get(deviceId)
  if (prev === undefined) seen.set(deviceId, { deviceId, tenant, ts })
  else {
    if (ts > prev.ts) prev.ts = ts
    prev.tenant = tenant
  }
}

/**
 * Transcodes `values` (Confluent wire format: the caller has checked the schema id) into one binary COPY stream for
 * TELEMETRY_COPY_COLUMNS, and returns with it each device's latest reading (for last-seen).
 * Throws TranscodeError on anything the general path should judge.
 */
export function telemetryCopy(values: Buffer[]): { copy: Buffer; lastSeen: LastSeen[] } {
  const w = new CopyWriter(values.reduce((a, p) => a + p.length, 0) * 2 + 64)
  const maps = new CopyWriter(1 << 12)
  const seen = new Map<string, LastSeen>()
  w.header()
  for (const p of values) {
    const r = new AvroReader(p, WIRE_HEADER_LENGTH)
    w.int16(TELEMETRY_COPY_COLUMNS.length)
    const h = readHead(r)
    w.bytesField(p, h.ds, h.de)
    w.timestampField(h.ts)
    w.int64Field(h.seq)
    if (h.tenantAt < 0) w.int32(-1)
    else w.bytesField(p, h.tenantAt, h.tenantEnd)
    w.timestampField(h.receivedAt)
    // metrics and meta come before source on the wire but after it in the table.
    maps.at = 0
    mapField(maps, r, 'union')
    mapField(maps, r, 'string')
    const source = SOURCES[r.long()]
    if (!source) throw new TranscodeError('bad enum index')
    w.bytesField(source, 0, source.length)
    w.slice(maps.buf, 0, maps.at)
    if (r.at !== p.length) throw new TranscodeError('trailing bytes')
    const tenant = h.tenantAt < 0 ? null : p.toString('utf8', h.tenantAt, h.tenantEnd)
    noteSeen(seen, p.toString('utf8', h.ds, h.de), tenant, h.ts)
  }
  w.int16(-1)
  return { copy: w.done(), lastSeen: [...seen.values()] }
}

/**
 * Transcodes `values` (as telemetryCopy) into rows of the `telemetry` table as SQLite stores
 * them (the columns of TELEMETRY in order; timestamps as epoch ms, the maps as JSON text, the
 * text JSON.stringify makes of them), and each device's latest reading. The embedded store's
 * fast path: on the SQLite writer thread, from the Avro bytes, with no object per reading and
 * no JSON.stringify (which, with avsc's decoding and the rows' copy to that thread, was most of
 * what the sink cost `up`). Throws TranscodeError on anything the general path should judge.
 */
export function telemetryRows(values: Buffer[]): { rows: unknown[][]; lastSeen: LastSeen[] } {
  const json = new CopyWriter(1 << 12)
  const seen = new Map<string, LastSeen>()
  const rows: unknown[][] = new Array<unknown[]>(values.length)
  for (let i = 0; i < values.length; i++) {
    const p = values[i]!
    const r = new AvroReader(p, WIRE_HEADER_LENGTH)
    const h = readHead(r)
    const deviceId = p.toString('utf8', h.ds, h.de)
    const tenant = h.tenantAt < 0 ? null : p.toString('utf8', h.tenantAt, h.tenantEnd)
    json.at = 0
    mapJson(json, r, 'union', true)
    const metrics = json.buf.toString('utf8', 0, json.at)
    json.at = 0
    mapJson(json, r, 'string', true)
    const meta = json.buf.toString('utf8', 0, json.at)
    const source = SOURCE_NAMES[r.long()]
    if (!source) throw new TranscodeError('bad enum index')
    if (r.at !== p.length) throw new TranscodeError('trailing bytes')
    rows[i] = [deviceId, h.ts, h.seq, tenant, h.receivedAt, source, metrics, meta]
    noteSeen(seen, deviceId, tenant, h.ts)
  }
  return { rows, lastSeen: [...seen.values()] }
}
