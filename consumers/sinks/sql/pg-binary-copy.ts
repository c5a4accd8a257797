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

/** A growable byte buffer; each field is its length (int32) and its bytes. */
class Writer {
  buf = Buffer.allocUnsafe(1 << 16)
  at = 0

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n))
    this.buf.copy(next, 0, 0, this.at)
    this.buf = next
  }

  bytes(b: Buffer): void {
    this.room(b.length)
    this.at += b.copy(this.buf, this.at)
  }

  int16(v: number): void {
    this.room(2)
    this.at = this.buf.writeInt16BE(v, this.at)
  }

  int32(v: number): void {
    this.room(4)
    this.at = this.buf.writeInt32BE(v, this.at)
  }

  int32Field(v: number): void {
    this.int32(4)
    this.int32(v)
  }

  int64Field(v: bigint): void {
    this.room(12)
    this.at = this.buf.writeInt32BE(8, this.at)
    this.at = this.buf.writeBigInt64BE(v, this.at)
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

  /** A UTF-8 string, after one `prefix` byte when given (jsonb's version). */
  textField(s: string, prefix?: number): void {
    const extra = prefix === undefined ? 0 : 1
    // At most 3 bytes per UTF-16 unit: reserve that, write, then put the real length in front.
    this.room(4 + extra + s.length * 3)
    const lengthAt = this.at
    this.at += 4
    if (prefix !== undefined) this.buf[this.at++] = prefix
    this.at += this.buf.write(s, this.at, 'utf8')
    this.buf.writeInt32BE(this.at - lengthAt - 4, lengthAt)
  }
}

function value(w: Writer, t: ColumnType, v: unknown): void {
  if (v === null || v === undefined) return w.int32(-1)
  switch (t) {
    case 'text':
      return w.textField(String(v))
    case 'object':
      return w.textField(JSON.stringify(v), 1) // jsonb: version 1, then the JSON text
    case 'timestamp': // microseconds since 2000-01-01
      return w.int64Field(BigInt(Math.round((v as number) - PG_EPOCH_MS)) * 1000n)
    case 'bigint':
      return w.int64Field(BigInt(v as number))
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
  const w = new Writer()
  w.bytes(SIGNATURE)
  w.int32(0) // flags
  w.int32(0) // header extension length
  const columns = spec.columns
  for (const r of rows) {
    w.int16(columns.length)
    for (const c of columns) value(w, c.type, c.get(r))
  }
  w.int16(-1)
  return w.buf.subarray(0, w.at)
}
