import type { OutRecord, Producer, RecordMeta } from '../../core/kafka/log'
import { PushbackError } from '../errors'
import { Fifo } from './fifo'

/** Options of the durable writer. */
export interface WriterOptions {
  maxBatchRecords: number
  lingerMs: number
  maxBufferedRecords: number
  /** A filled slot not durable after this long fails with PushbackError (the device is not
   * acknowledged; the write itself goes on). Default: no limit. */
  ackTimeoutMs?: number
  /** Called after each Kafka write with its size and seconds taken. */
  onBatch?: (records: number, seconds: number) => void
}

/** A place in the write order, reserved when a message arrives and filled once it is decoded. */
export interface Slot {
  /** Resolves when this slot's records are durable (with nothing written: an empty array,
   * once cancelled); fails when their write failed or timed out. Pending until filled. */
  readonly done: Promise<RecordMeta[]>
  /** Hands over the records of this message; resolves once Kafka has all of them. */
  fill(records: OutRecord[]): Promise<RecordMeta[]>
  /** Gives the place up (the message was refused before producing anything): `done`
   * resolves with nothing written. */
  cancel(): void
}

const NO_RECORDS: OutRecord[] = []

/** A slot, and its entry in the write queue: one object per message (this is the hot path). */
class Entry implements Slot {
  state: 'pending' | 'filled' | 'cancelled' = 'pending'
  records: OutRecord[] = NO_RECORDS
  settled = false
  /** When a filled slot times out (ms since the epoch). */
  deadline = 0
  readonly done: Promise<RecordMeta[]>
  private resolveDone!: (m: RecordMeta[]) => void
  private rejectDone!: (e: unknown) => void

  constructor(private readonly writer: DurableWriter) {
    this.done = new Promise<RecordMeta[]>((resolve, reject) => {
      this.resolveDone = resolve
      this.rejectDone = reject
    })
  }

  fill(records: OutRecord[]): Promise<RecordMeta[]> {
    if (this.state !== 'pending') throw new Error('slot already filled or cancelled')
    this.state = 'filled'
    this.records = records
    this.writer.filled(this)
    return this.done
  }

  cancel(): void {
    if (this.state !== 'pending') return
    this.state = 'cancelled'
    this.resolve([])
    this.writer.cancelled()
  }

  resolve(m: RecordMeta[]): void {
    if (this.settled) return
    this.settled = true
    this.resolveDone(m)
  }

  /** Only ever after fill(), whose caller awaits `done`: never an unhandled rejection. */
  reject(e: unknown): void {
    if (this.settled) return
    this.settled = true
    this.rejectDone(e)
  }
}

/**
 * Writes records to Kafka in the order their slots were reserved, batching across devices.
 * One batch is in flight at a time: a device's records reach their partition in arrival
 * order, and the next batch fills while one is written. A slot that is not yet filled holds
 * back the slots behind it (so order survives asynchronous decoding). When more than
 * `maxBufferedRecords` are waiting, `reserve` throws PushbackError instead of buffering more.
 */
export class DurableWriter {
  private readonly queue = new Fifo<Entry>()
  /** Filled slots in fill order, for their ack timeout (one timeout for all: deadlines come in order). */
  private readonly deadlines = new Fifo<Entry>()
  private sweepTimer: NodeJS.Timeout | undefined
  private buffered = 0
  private inFlight = false
  private scheduled = false
  private lingerTimer: NodeJS.Timeout | undefined
  private closing: Promise<void> | undefined
  private closed = false
  private drained: (() => void) | undefined

  constructor(
    private readonly producer: Producer,
    private readonly opts: WriterOptions,
  ) {}

  /** Records reserved or waiting, including the batch in flight. */
  get bufferedRecords(): number {
    return this.buffered
  }

  /** Reserves the next place in the write order; throws PushbackError when the buffer is full. */
  reserve(): Slot {
    if (this.closed) throw new PushbackError('the bridge is shutting down', 5)
    if (this.buffered >= this.opts.maxBufferedRecords) {
      throw PushbackError.flowControl(`write buffer full (${this.buffered} records waiting for Kafka)`, 1)
    }
    const entry = new Entry(this)
    this.queue.push(entry)
    this.buffered++
    return entry
  }

  /** @internal A slot was filled. */
  filled(entry: Entry): void {
    this.buffered += entry.records.length - 1
    if (entry.records.length === 0) entry.resolve([])
    else if (this.opts.ackTimeoutMs !== undefined) {
      entry.deadline = Date.now() + this.opts.ackTimeoutMs
      this.deadlines.push(entry)
      this.sweepTimer ??= setInterval(() => this.sweep(), 100).unref()
    }
    this.schedule()
  }

  /** @internal A slot was given up. */
  cancelled(): void {
    this.buffered--
    this.schedule()
  }

  private sweep(): void {
    const now = Date.now()
    for (let head = this.deadlines.at(0); head; head = this.deadlines.at(0)) {
      if (!head.settled && head.deadline > now) break
      this.deadlines.shift()
      if (!head.settled)
        head.reject(new PushbackError(`Kafka did not confirm within ${this.opts.ackTimeoutMs} ms`, 5))
    }
    if (this.deadlines.length === 0 && this.sweepTimer) {
      clearInterval(this.sweepTimer)
      this.sweepTimer = undefined
    }
  }

  private schedule(): void {
    if (this.inFlight || this.scheduled) return
    const ready = this.readyRecords()
    if (ready === 0) {
      this.dropSettledHead()
      return
    }
    this.scheduled = true
    const run = () => {
      this.scheduled = false
      this.lingerTimer = undefined
      void this.pump()
    }
    // A full batch (or shutting down) goes now; otherwise wait `lingerMs` for more records.
    if (ready >= this.opts.maxBatchRecords || this.opts.lingerMs <= 0 || this.closed) setImmediate(run)
    else this.lingerTimer = setTimeout(run, this.opts.lingerMs)
  }

  /** Records in filled slots at the head of the queue, up to the first pending slot. */
  private readyRecords(): number {
    let n = 0
    for (let i = 0; i < this.queue.length; i++) {
      const e = this.queue.at(i)!
      if (e.state === 'pending') break
      n += e.records.length
      if (n >= this.opts.maxBatchRecords) break
    }
    return n
  }

  private dropSettledHead(): void {
    while (
      this.queue.length &&
      this.queue.at(0)!.state !== 'pending' &&
      this.queue.at(0)!.records.length === 0
    )
      this.queue.shift()
    this.checkDrained()
  }

  private checkDrained(): void {
    if (this.drained && this.queue.length === 0 && !this.inFlight) this.drained()
  }

  private async pump(): Promise<void> {
    if (this.inFlight) return
    const batch: Entry[] = []
    let count = 0
    while (this.queue.length) {
      const head = this.queue.at(0)!
      if (head.state === 'pending') break
      if (head.state === 'filled' && head.records.length > 0) {
        if (count > 0 && count + head.records.length > this.opts.maxBatchRecords) break
        count += head.records.length
        batch.push(head)
      }
      this.queue.shift()
    }
    if (batch.length === 0) {
      this.checkDrained()
      return
    }
    this.inFlight = true
    const records = batch.flatMap((e) => e.records)
    const t0 = process.hrtime.bigint()
    try {
      const metas = await this.producer.send(records)
      this.opts.onBatch?.(records.length, Number(process.hrtime.bigint() - t0) / 1e9)
      let i = 0
      for (const e of batch) {
        e.resolve(metas.slice(i, i + e.records.length))
        i += e.records.length
      }
    } catch (err) {
      for (const e of batch) e.reject(err)
    } finally {
      this.inFlight = false
      this.buffered -= count
    }
    this.schedule()
    this.checkDrained()
  }

  /** Stops taking new slots and resolves once everything reserved has been written or failed. */
  close(): Promise<void> {
    this.closed = true
    this.closing ??= new Promise<void>((resolve) => {
      this.drained = resolve
      if (this.lingerTimer) {
        // Do not wait out the linger: flush now.
        clearTimeout(this.lingerTimer)
        this.lingerTimer = undefined
        this.scheduled = false
      }
      this.schedule()
      this.checkDrained()
    })
    return this.closing
  }
}
