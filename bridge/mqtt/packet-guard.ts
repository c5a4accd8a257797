import { Duplex } from 'node:stream'
import type { Socket } from 'node:net'

/**
 * Reads MQTT fixed headers (MQTT 3.1.1 §2.2: one type byte, then the Remaining Length as a
 * variable-length integer of up to 4 bytes) on the way in, and fails the connection as soon as
 * a packet declares more than `maxPacketBytes`, before the broker buffers any of it. Bytes
 * pass through unchanged.
 */
export class PacketSizeGuard extends Duplex {
  /** Bytes of the current packet still to skip; -1 while reading a header. */
  private remaining = -1
  private headerBytes = 0
  private length = 0
  private multiplier = 1
  private corked = false

  constructor(
    private readonly socket: Socket | Duplex,
    private readonly maxPacketBytes: number,
    private readonly onTooLarge: (declared: number) => void,
  ) {
    super()
    socket.on('data', (chunk: Buffer) => {
      const declared = this.inspect(chunk)
      if (declared !== undefined) {
        this.onTooLarge(declared)
        socket.destroy()
        this.destroy()
        return
      }
      if (!this.push(chunk)) (socket as Socket).pause?.()
    })
    socket.on('end', () => this.push(null))
    socket.on('close', () => this.destroy())
    socket.on('error', (err) => this.destroy(err))
  }

  /** Walks packet boundaries; returns the declared size of a packet over the limit, if any. */
  private inspect(chunk: Buffer): number | undefined {
    let i = 0
    while (i < chunk.length) {
      if (this.remaining > 0) {
        const skip = Math.min(this.remaining, chunk.length - i)
        this.remaining -= skip
        i += skip
        if (this.remaining === 0) this.remaining = -1
        continue
      }
      if (this.headerBytes === 0) {
        // the type-and-flags byte
        this.headerBytes = 1
        this.length = 0
        this.multiplier = 1
        i++
        continue
      }
      const b = chunk[i++]!
      this.length += (b & 0x7f) * this.multiplier
      this.multiplier *= 128
      this.headerBytes++
      if (this.length > this.maxPacketBytes) return this.length
      if ((b & 0x80) === 0 || this.headerBytes > 4) {
        this.headerBytes = 0
        this.remaining = this.length === 0 ? -1 : this.length
      }
    }
    return undefined
  }

  override _read(): void {
    ;(this.socket as Socket).resume?.()
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    // A Kafka batch acknowledges many messages in the same tick: cork the socket so their
    // PUBACKs leave in one write instead of one system call each.
    const sock = this.socket as Socket
    if (!this.corked && typeof sock.cork === 'function') {
      this.corked = true
      sock.cork()
      process.nextTick(() => {
        this.corked = false
        sock.uncork()
      })
    }
    // Done once the socket has the bytes (or, under backpressure, once it drains): waiting for
    // the socket to flush them held every later chunk back until the uncork, so nothing was
    // ever corked together (mqtt-packet writes a PUBACK as three chunks: three system calls).
    if (this.socket.write(chunk)) cb()
    else this.socket.once('drain', () => cb())
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.socket.end(cb)
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket.destroy()
    cb(err)
  }
}
