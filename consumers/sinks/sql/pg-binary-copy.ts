import type { ColumnType, TableSpec } from './tables'

/**
 * Rows in PostgreSQL's binary COPY format (`COPY … FROM STDIN (FORMAT binary)`): no text to
 * escape on our side and no text to parse on the server's (timestamps go as microseconds,
 * numbers as their bytes); jsonb goes as its version byte and the JSON text. The column types
 * must be exactly the ones the migrations create (dialect.ts: PG_TYPES), which binary COPY
 * checks, so a table altered by hand fails the COPY and the sink falls back to its INSERT.
 * Format: https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4
 */

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1')
/** 2000-01-01T00:00:00Z, PostgreSQL's timestamp epoch, in ms since the Unix epoch. */
const PG_EPOCH_MS = 946_684_800_000
const TWO_32 = 4294967296

/** A growable byte buffer of a COPY stream; each field is its length (int32) and its bytes. */
export class CopyWriter {
  buf: Buffer
  at = 0

  constructor(size = 1 << 16) {
    this.buf = Buffer.allocUnsafe(size)
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n))
    this.buf.copy(next, 0, 0, this.at)
    this.buf = next
  }

  /** The stream's header: signature, flags, header extension length. */
  header(): void {
    this.slice(SIGNATURE, 0, SIGNATURE.length)
    this.int32(0)
    this.int32(0)
  }

  /** The written bytes (the trailer included once written). */
  done(): Buffer {
    return this.buf.subarray(0, this.at)
  }

  byte(v: number): void {
    this.room(1)
    this.buf[this.at++] = v
  }

  /** Bytes [s, e) of `src`, as they are. */
  slice(src: Buffer, s: number, e: number): void {
    this.room(e - s)
    if (e - s > 64) {
      this.at += src.copy(this.buf, this.at, s, e)
      return
    }
    // Short runs (ids, JSON keys) by hand: Buffer#copy costs more to call than to copy them.
    const b = this.buf
    let at = this.at
    for (let i = s; i < e; i++) b[at++] = src[i]!
    this.at = at
  }

  /** A string known to be ASCII (a number, `true`, `null`), one byte per character; other text goes through `text`. */
  ascii(s: string): void {
    this.room(s.length)
    const b = this.buf
    let at = this.at
    for (let i = 0; i < s.length; i++) b[at++] = s.charCodeAt(i)
    this.at = at
  }

  /** A UTF-8 string, not a field (JSON text). */
  text(s: string): void {
    this.room(s.length * 3)
    this.at += this.buf.write(s, this.at, 'utf8')
  }

  int16(v: number): void {
    this.room(2)
    const b = this.buf
    b[this.at++] = (v >> 8) & 0xff
    b[this.at++] = v & 0xff
  }

  int32(v: number): void {
    this.room(4)
    this.put32(v)
  }

  /** Big-endian 32 bits of v (signed or unsigned), room already made. */
  private put32(v: number): void {
    const b = this.buf
    b[this.at++] = (v >>> 24) & 0xff
    b[this.at++] = (v >>> 16) & 0xff
    b[this.at++] = (v >>> 8) & 0xff
    b[this.at++] = v & 0xff
  }

  int32Field(v: number): void {
    this.int32(4)
    this.int32(v)
  }

  /** An int64 field given as its high (signed) and low (unsigned) 32 bits. */
  int64Parts(hi: number, lo: number): void {
    if (hi < -0x80000000 || hi > 0x7fffffff) throw new RangeError(`int64 out of range`)
    this.room(12)
    this.put32(8)
    this.put32(hi)
    this.put32(lo)
  }

  /** An int64 field of a safe integer (no BigInt on the hot path). */
  int64Field(v: number): void {
    const hi = Math.floor(v / TWO_32)
    this.int64Parts(hi, v - hi * TWO_32)
  }

  /** A timestamp field: microseconds since 2000-01-01 of an epoch-ms time, exact over the whole range. */
  timestampField(ms: number): void {
    const d = Math.round(ms) - PG_EPOCH_MS // ms × 1000 may pass 2^53: multiply the two halves
    const dHi = Math.floor(d / TWO_32)
    const lo = (d - dHi * TWO_32) * 1000
    const carry = Math.floor(lo / TWO_32)
    this.int64Parts(dHi * 1000 + carry, lo - carry * TWO_32)
  }

  doubleField(v: number): void {
    this.room(12)
    this.at = this.buf.writeInt32BE(8, this.at)
    this.at = this.buf.writeDoubleBE(v, this.at)
  }

  byteField(v: number): void {
    this.room(5)
    this.at = this.buf.writeInt32BE(1, this.at)
    this.buf[this.at++] = v
  }

  /** A field of bytes [s, e) of `src` (UTF-8 text as it is). */
  bytesField(src: Buffer, s: number, e: number): void {
    this.int32(e - s)
    this.slice(src, s, e)
  }

  /** Starts a field whose length is known only at its end; returns where the length goes. */
  beginField(): number {
    this.room(4)
    this.at += 4
    return this.at - 4
  }

  endField(lengthAt: number): void {
    const at = this.at
    this.at = lengthAt
    this.put32(at - lengthAt - 4)
    this.at = at
  }

  /** A UTF-8 string, after one `prefix` byte when given (jsonb's version). */
  textField(s: string, prefix?: number): void {
    const extra = prefix === undefined ? 0 : 1
    // At most 3 bytes per UTF-16 unit: reserve that, write, then put the real length in front.
    this.room(4 + extra + s.length * 3)
    const lengthAt = this.beginField()
    if (prefix !== undefined) this.buf[this.at++] = prefix
    this.at += this.buf.write(s, this.at, 'utf8')
    this.endField(lengthAt)
  }
}

function value(w: CopyWriter, t: ColumnType, v: unknown): void {
  if (v === null || v === undefined) return w.int32(-1)
  switch (t) {
    case 'text':
      return w.textField(String(v))
    case 'object':
      return w.textField(JSON.stringify(v), 1) // jsonb: version 1, then the JSON text
    case 'timestamp': // microseconds since 2000-01-01
      return w.timestampField(v as number)
    case 'bigint':
      return w.int64Field(v as number)
    case 'int':
      return w.int32Field(v as number)
    case 'double':
      return w.doubleField(v as number)
    case 'boolean':
      return w.byteField(v ? 1 : 0)
  }
}

/** The whole COPY stream for `rows`: header, one tuple per row, trailer. */
export function binaryCopy<T>(spec: TableSpec<T>, rows: T[]): Buffer {
  const w = new CopyWriter()
  w.header()
  const columns = spec.columns
  for (const r of rows) {
    w.int16(columns.length)
    for (const c of columns) value(w, c.type, c.get(r))
  }
  w.int16(-1)
  return w.done()
}
