/**
 * Writing and reading the binary changelog entries of job states (rule states, open
 * windows). Numbers are kept as IEEE doubles, so a restored state computes exactly as the
 * one that was written; strings are a varint byte length and UTF-8.
 */

/** A growing scratch buffer, reused between entries: `take()` copies the entry out of it. */
export class StateWriter {
  private buf = Buffer.allocUnsafe(4096)
  private at = 0
  /** Starts a new entry. */
  reset(): this {
    this.at = 0
    return this
  }
  /** A copy of the entry written since `reset()`. */
  take(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.at))
  }
  private room(n: number): void {
    if (this.at + n <= this.buf.length) return
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n))
    this.buf.copy(bigger, 0, 0, this.at)
    this.buf = bigger
  }
  u8(v: number): void {
    this.room(1)
    this.buf[this.at++] = v
  }
  varint(v: number): void {
    this.room(5)
    while (v >= 0x80) {
      this.buf[this.at++] = (v & 0x7f) | 0x80
      v >>>= 7
    }
    this.buf[this.at++] = v
  }
  f64(v: number): void {
    this.room(8)
    this.at = this.buf.writeDoubleLE(v, this.at)
  }
  f32(v: number): void {
    this.room(4)
    this.at = this.buf.writeFloatLE(v, this.at)
  }
  str(s: string): void {
    const n = Buffer.byteLength(s)
    this.varint(n)
    this.room(n)
    this.at += this.buf.write(s, this.at)
  }
}

/** Reads an entry written by a StateWriter; errors name `what` (e.g. "rule state"). */
export class StateReader {
  at = 0
  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}
  fail(message: string): never {
    throw new Error(`${this.what}: ${message}`)
  }
  private need(n: number): void {
    if (this.at + n > this.buf.length) this.fail('entry cut short')
  }
  u8(): number {
    this.need(1)
    return this.buf[this.at++]!
  }
  varint(): number {
    let v = 0
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.u8()
      v += (b & 0x7f) * 2 ** shift
      if (b < 0x80) return v
    }
    return this.fail('bad length')
  }
  f64(): number {
    this.need(8)
    const v = this.buf.readDoubleLE(this.at)
    this.at += 8
    return v
  }
  f32(): number {
    this.need(4)
    const v = this.buf.readFloatLE(this.at)
    this.at += 4
    return v
  }
  str(): string {
    const n = this.varint()
    this.need(n)
    const s = this.buf.toString('utf8', this.at, this.at + n)
    this.at += n
    return s
  }
  /** Checks that the whole entry was read. */
  end(): void {
    if (this.at !== this.buf.length) this.fail(`${this.buf.length - this.at} bytes left over`)
  }
}
