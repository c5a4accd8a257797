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
   * All three are views of one buffer. It grows, doubling, up to the window; once full, `next`
   * wraps and evicts the oldest. */
  ts: Float64Array
  seq: Float64Array
  same: Int32Array
  next: number
  /** The newest slot of each seq in the ring: a hash table (linear probing, at most half full)
   * of slot + 1 (0: empty), keyed by the seq its slot holds; in the ring's buffer too. A
   * Map<number, number> per device was ~25 MB of the bridge's heap at 10,000 devices after 100
   * readings each (~250 MB once their windows fill), marked again by every full GC and grown
   * by rehashing on the heap; before it, a `${ts}:${seq}` string key cost a number-to-text
   * conversion and a fresh string hash per reading, 7% of the bridge. */
  index: Int32Array
  /** The device's number in the tracker: its slots' keys in the tracker's `writes`. */
  id: number
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
  /** The next device's number (counted, not the Map's size: numbers stay unique if devices are ever dropped). */
  private nextId = 0
  /** The writes in progress of first copies (a resend waits for them), until written, keyed by
   * device number × window + slot. One Map for all devices: a Map per device grew and shrank its
   * table with every message, and each table lived until the device's next message (seconds at
   * 10,000 devices), long enough to be promoted: ~11% of what outlived a scavenge of the
   * bridge's thread at 20,000 readings/s. */
  private readonly writes = new Map<number, Promise<unknown>>()
  readonly counts: SeqCounts = { gaps: 0, missing: 0, reorders: 0, duplicates: 0 }
  /** The slot the last `observe` put its reading in (-1: none, a duplicate or no seq): what
   * `written` and `forget` take, so that they need not look the reading up again. */
  slot = -1

  constructor(private readonly window = 1024) {}

  /**
   * Classifies a reading and remembers it (unless it is a duplicate), with `write`, the
   * write in progress that carries it, until `written` is called. Its slot is then in `slot`.
   */
  observe(
    deviceId: string,
    ts: number,
    seq: number | null,
    write: Promise<unknown> | null = null,
  ): SeqVerdict {
    this.slot = -1
    if (seq === null) return 'none'
    let d = this.devices.get(deviceId)
    if (!d) {
      d = {
        highest: seq,
        ...ring(Math.min(this.window, FIRST_SLOTS)),
        next: 0,
        id: this.nextId++,
      }
      this.devices.set(deviceId, d)
      this.remember(d, ts, seq, write)
      return 'first'
    }
    // Above the highest seq ever seen it cannot be in the window: no lookup (the usual case).
    if (seq <= d.highest && find(d, ts, seq) !== -1) {
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
    if (!Number.isNaN(d.seq[s])) {
      evict(d, s)
      this.writes.delete(this.key(d, s))
    }
    d.ts[s] = ts
    d.seq[s] = seq
    d.same[s] = headOf(d, seq)
    setHead(d, seq, s)
    if (write) this.writes.set(this.key(d, s), write)
    d.next = s + 1
    this.slot = s
  }

  /** The write in progress of a reading's first copy, if there is one. */
  firstCopy(deviceId: string, ts: number, seq: number): Promise<unknown> | null {
    const d = this.devices.get(deviceId)
    const s = d ? find(d, ts, seq) : -1
    return (s !== -1 && this.writes.get(this.key(d!, s))) || null
  }

  private key(d: DeviceSeq, slot: number): number {
    return d.id * this.window + slot
  }

  /** The write of the reading `observe` put in `slot` is over (durable): its resends need not
   * wait any more. Nothing if the slot has since been taken by another write. */
  written(deviceId: string, slot: number, write: Promise<unknown>): void {
    const d = this.devices.get(deviceId)
    const k = d ? this.key(d, slot) : -1
    if (d && this.writes.get(k) === write) this.writes.delete(k)
  }

  /** Forgets the reading `observe` put in `slot` with `write`, which failed, so that the
   * device's resend is not taken for a duplicate. Nothing if the slot has since been taken. */
  forget(deviceId: string, slot: number, write: Promise<unknown>): void {
    const d = this.devices.get(deviceId)
    const k = d ? this.key(d, slot) : -1
    if (d && this.writes.get(k) === write) {
      evict(d, slot)
      this.writes.delete(k)
    }
  }
}

/** The slot of the reading (ts, seq) in the device's ring, or -1. */
function find(d: DeviceSeq, ts: number, seq: number): number {
  // A chain is at most the ring long; the bound only guards against a bug (a loop).
  for (let s = headOf(d, seq), n = 0; s !== -1 && n < d.same.length; s = d.same[s]!, n++)
    if (d.ts[s] === ts) return s
  return -1
}

/** Where a seq's search starts in the index: a hash of both halves of the number. */
function home(seq: number, mask: number): number {
  return (Math.imul((seq >>> 0) ^ ((seq / 4294967296) >>> 0), 0x9e3779b1) >>> 0) & mask
}

/** The index position holding `seq`, or the empty one where it would go (as -1 - position). */
function probe(d: DeviceSeq, seq: number): number {
  const mask = d.index.length - 1
  // At most half full, so an empty position is always ahead; the bound only guards against a bug.
  for (let i = home(seq, mask), n = 0; n <= mask; i = (i + 1) & mask, n++) {
    const e = d.index[i]!
    if (e === 0) return -1 - i
    if (d.seq[e - 1] === seq) return i
  }
  throw new Error('duplicate window: the seq index is full')
}

/** The newest slot holding `seq`, or -1. */
function headOf(d: DeviceSeq, seq: number): number {
  const i = probe(d, seq)
  return i < 0 ? -1 : d.index[i]! - 1
}

/** Makes `s` the newest slot of `seq` (its ring slot holds `seq` already, or did until evicted). */
function setHead(d: DeviceSeq, seq: number, s: number): void {
  const i = probe(d, seq)
  d.index[i < 0 ? -1 - i : i] = s + 1
}

/** Takes `seq` out of the index; the entries after it in its run move back (no tombstones). */
function dropHead(d: DeviceSeq, seq: number): void {
  let hole = probe(d, seq)
  if (hole < 0) return
  const mask = d.index.length - 1
  d.index[hole] = 0
  for (let j = (hole + 1) & mask; d.index[j] !== 0; j = (j + 1) & mask) {
    const h = home(d.seq[d.index[j]! - 1]!, mask)
    // The entry at j may fill the hole unless its home lies cyclically in (hole, j].
    if (hole < j ? h <= hole || h > j : h <= hole && h > j) {
      d.index[hole] = d.index[j]!
      d.index[j] = 0
      hole = j
    }
  }
}

/** Empties slot `s`: out of its seq's chain (its write is the caller's to forget). */
function evict(d: DeviceSeq, s: number): void {
  const seq = d.seq[s]!
  const head = headOf(d, seq)
  if (head === s) {
    if (d.same[s] !== -1) setHead(d, seq, d.same[s]!)
    else dropHead(d, seq)
  } else {
    for (let p = head, n = 0; p !== -1 && n < d.same.length; p = d.same[p]!, n++)
      if (d.same[p] === s) {
        d.same[p] = d.same[s]!
        break
      }
  }
  d.seq[s] = NaN
}

/** A ring of `slots` empty slots and its index: four arrays in one buffer (one allocation). */
function ring(slots: number): Pick<DeviceSeq, 'ts' | 'seq' | 'same' | 'index'> {
  const size = 2 ** Math.ceil(Math.log2(2 * slots))
  const buf = new ArrayBuffer(slots * 20 + size * 4)
  return {
    ts: new Float64Array(buf, 0, slots),
    seq: new Float64Array(buf, slots * 8, slots).fill(NaN),
    same: new Int32Array(buf, slots * 16, slots),
    index: new Int32Array(buf, slots * 20, size),
  }
}

/** Grows a ring that has not wrapped yet (its slots are in arrival order) to `slots`. */
function grow(d: DeviceSeq, slots: number): void {
  const old = d.index
  const r = ring(slots)
  r.ts.set(d.ts)
  r.seq.set(d.seq)
  r.same.set(d.same)
  d.ts = r.ts
  d.seq = r.seq
  d.same = r.same
  d.index = r.index
  for (const e of old) if (e !== 0) setHead(d, d.seq[e - 1]!, e - 1)
}
