/** How a reading's `seq` relates to what the device sent before. */
export type SeqVerdict = 'first' | 'next' | 'gap' | 'reorder' | 'duplicate' | 'none'

/** Per-device counters of sequence anomalies, for metrics. */
export interface SeqCounts {
  gaps: number
  missing: number
  reorders: number
  duplicates: number
}

/**
 * A device's sequence state. Its recent readings live in a ring of typed arrays, not as an
 * object each: at 10,000 devices with a window of 1,024 an object per reading (and its Map
 * entry) was ~100 bytes, up to a gigabyte of small objects that every full GC of the bridge's
 * thread had to mark.
 */
interface DeviceSeq {
  highest: number
  /** The ring, by slot: event time and seq (NaN: an empty slot) of a recent reading, and the
   * slot of an older one with the same seq and another ts (a device restarted its count; -1: none).
   * It grows, doubling, up to the window; once full, `next` wraps and evicts the oldest. */
  ts: Float64Array
  seq: Float64Array
  same: Int32Array
  next: number
  /** The newest slot of each seq in the ring. Keyed by the number itself: a `${ts}:${seq}`
   * string key cost a number-to-text conversion and a fresh string hash per reading, 7% of the bridge. */
  bySeq: Map<number, number>
  /** The writes in progress of first copies, by slot (a resend waits for them), until written. */
  writes: Map<number, Promise<unknown>> | undefined
}

/** Slots a device's ring starts with. */
const FIRST_SLOTS = 16

/**
 * Accounts for device sequence numbers: gaps (and how many numbers are missing), reorders
 * (a number below the highest seen) and exact duplicates of `(deviceId, ts, seq)` within a
 * window of the last `window` readings per device, which the bridge drops.
 */
export class SequenceTracker {
  private readonly devices = new Map<string, DeviceSeq>()
  readonly counts: SeqCounts = { gaps: 0, missing: 0, reorders: 0, duplicates: 0 }

  constructor(private readonly window = 1024) {}

  /**
   * Classifies a reading and remembers it (unless it is a duplicate), with `write`, the
   * write in progress that carries it, until `written` is called.
   */
  observe(
    deviceId: string,
    ts: number,
    seq: number | null,
    write: Promise<unknown> | null = null,
  ): SeqVerdict {
    if (seq === null) return 'none'
    let d = this.devices.get(deviceId)
    if (!d) {
      const slots = Math.min(this.window, FIRST_SLOTS)
      d = {
        highest: seq,
        ts: new Float64Array(slots),
        seq: new Float64Array(slots).fill(NaN),
        same: new Int32Array(slots),
        next: 0,
        bySeq: new Map(),
        writes: undefined,
      }
      this.devices.set(deviceId, d)
      this.remember(d, ts, seq, write)
      return 'first'
    }
    if (find(d, ts, seq) !== -1) {
      this.counts.duplicates++
      return 'duplicate'
    }
    this.remember(d, ts, seq, write)
    if (seq === d.highest + 1) {
      d.highest = seq
      return 'next'
    }
    if (seq > d.highest + 1) {
      this.counts.gaps++
      this.counts.missing += seq - d.highest - 1
      d.highest = seq
      return 'gap'
    }
    this.counts.reorders++
    return 'reorder'
  }

  private remember(d: DeviceSeq, ts: number, seq: number, write: Promise<unknown> | null): void {
    let s = d.next
    if (s === d.seq.length) {
      if (s < this.window) grow(d, Math.min(this.window, s * 2))
      else s = 0
    }
    if (!Number.isNaN(d.seq[s])) evict(d, s)
    d.ts[s] = ts
    d.seq[s] = seq
    d.same[s] = d.bySeq.get(seq) ?? -1
    d.bySeq.set(seq, s)
    if (write) (d.writes ??= new Map()).set(s, write)
    d.next = s + 1
  }

  /** The write in progress of a reading's first copy, if there is one. */
  firstCopy(deviceId: string, ts: number, seq: number): Promise<unknown> | null {
    const at = this.locate(deviceId, ts, seq)
    return (at && at.d.writes?.get(at.s)) || null
  }

  /** The write of a reading is over (durable): its resends need not wait any more. */
  written(deviceId: string, ts: number, seq: number, write: Promise<unknown>): void {
    const at = this.locate(deviceId, ts, seq)
    if (at && at.d.writes?.get(at.s) === write) at.d.writes.delete(at.s)
  }

  /** Forgets a reading whose write failed, so that the device's resend is not taken for a duplicate. */
  forget(deviceId: string, ts: number, seq: number): void {
    const at = this.locate(deviceId, ts, seq)
    if (at) evict(at.d, at.s)
  }

  /** The device and slot of the reading (ts, seq), if it is in the device's window. */
  private locate(deviceId: string, ts: number, seq: number): { d: DeviceSeq; s: number } | undefined {
    const d = this.devices.get(deviceId)
    const s = d ? find(d, ts, seq) : -1
    return s === -1 ? undefined : { d: d!, s }
  }
}

/** The slot of the reading (ts, seq) in the device's ring, or -1. */
function find(d: DeviceSeq, ts: number, seq: number): number {
  for (let s = d.bySeq.get(seq) ?? -1; s !== -1; s = d.same[s]!) if (d.ts[s] === ts) return s
  return -1
}

/** Empties slot `s`: out of its seq's chain, its write forgotten. */
function evict(d: DeviceSeq, s: number): void {
  const seq = d.seq[s]!
  const head = d.bySeq.get(seq) ?? -1
  if (head === s) {
    if (d.same[s] !== -1) d.bySeq.set(seq, d.same[s]!)
    else d.bySeq.delete(seq)
  } else {
    for (let p = head; p !== -1; p = d.same[p]!)
      if (d.same[p] === s) {
        d.same[p] = d.same[s]!
        break
      }
  }
  d.writes?.delete(s)
  d.seq[s] = NaN
}

/** Grows a ring that has not wrapped yet (its slots are in arrival order) to `slots`. */
function grow(d: DeviceSeq, slots: number): void {
  const ts = new Float64Array(slots)
  ts.set(d.ts)
  const seq = new Float64Array(slots).fill(NaN)
  seq.set(d.seq)
  const same = new Int32Array(slots)
  same.set(d.same)
  d.ts = ts
  d.seq = seq
  d.same = same
}
