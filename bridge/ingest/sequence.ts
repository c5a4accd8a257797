/** How a reading's `seq` relates to what the device sent before. */
export type SeqVerdict = 'first' | 'next' | 'gap' | 'reorder' | 'duplicate' | 'none'

/** Per-device counters of sequence anomalies, for metrics. */
export interface SeqCounts {
  gaps: number
  missing: number
  reorders: number
  duplicates: number
}

/** One recent reading of a device, for exact-duplicate detection. */
interface Recent {
  ts: number
  seq: number
  /** The write of its first copy while that write is in progress (a resend waits for it), then null. */
  write: Promise<unknown> | null
  /** An older recent reading with the same seq and another ts (a device restarted its count). */
  same: Recent | undefined
}

interface DeviceSeq {
  highest: number
  /** Recent readings by seq. Keyed by the number itself: a `${ts}:${seq}` string key cost a
   * number-to-text conversion and a fresh string hash per reading, 7% of the bridge. */
  recent: Map<number, Recent>
  /** The same readings in arrival order, a ring of `window` places: `ring[next]` is evicted
   * next. (Evicting the oldest through a Set's iterator walks over every deleted entry first.) */
  ring: (Recent | undefined)[]
  next: number
}

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
      this.devices.set(deviceId, (d = { highest: seq, recent: new Map(), ring: [], next: 0 }))
      this.remember(d, ts, seq, write)
      return 'first'
    }
    if (find(d, ts, seq)) {
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
    const old = d.ring[d.next]
    if (old !== undefined) unlink(d, old)
    const r: Recent = { ts, seq, write, same: d.recent.get(seq) }
    d.recent.set(seq, r)
    d.ring[d.next] = r
    d.next = (d.next + 1) % this.window
  }

  /** The write in progress of a reading's first copy, if there is one. */
  firstCopy(deviceId: string, ts: number, seq: number): Promise<unknown> | null {
    const d = this.devices.get(deviceId)
    return (d && find(d, ts, seq)?.write) ?? null
  }

  /** The write of a reading is over (durable): its resends need not wait any more. */
  written(deviceId: string, ts: number, seq: number, write: Promise<unknown>): void {
    const d = this.devices.get(deviceId)
    const r = d && find(d, ts, seq)
    if (r && r.write === write) r.write = null
  }

  /** Forgets a reading whose write failed, so that the device's resend is not taken for a duplicate. */
  forget(deviceId: string, ts: number, seq: number): void {
    const d = this.devices.get(deviceId)
    const r = d && find(d, ts, seq)
    if (!r) return
    unlink(d, r)
    // Rare (a failed write): a scan of the ring is fine.
    const at = d.ring.lastIndexOf(r)
    if (at !== -1) d.ring[at] = undefined
  }
}

function find(d: DeviceSeq, ts: number, seq: number): Recent | undefined {
  for (let r = d.recent.get(seq); r; r = r.same) if (r.ts === ts) return r
  return undefined
}

/** Takes `r` out of its seq's chain. */
function unlink(d: DeviceSeq, r: Recent): void {
  const head = d.recent.get(r.seq)
  if (head === r) {
    if (r.same) d.recent.set(r.seq, r.same)
    else d.recent.delete(r.seq)
    return
  }
  for (let p = head; p; p = p.same) {
    if (p.same === r) {
      p.same = r.same
      return
    }
  }
}
