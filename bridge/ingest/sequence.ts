/** How a reading's `seq` relates to what the device sent before. */
export type SeqVerdict = 'first' | 'next' | 'gap' | 'reorder' | 'duplicate' | 'none'

/** Per-device counters of sequence anomalies, for metrics. */
export interface SeqCounts {
  gaps: number
  missing: number
  reorders: number
  duplicates: number
}

interface DeviceSeq {
  highest: number
  /** Recent (ts, seq) keys, for exact-duplicate detection, each with the write of its first
   * copy while that write is in progress (a resend must wait for it), then null. */
  recent: Map<string, Promise<unknown> | null>
  /** The same keys in arrival order, a ring of `window` places: `ring[next]` is evicted next.
   * (Evicting a Set's oldest through its iterator walks over every deleted entry first, and
   * the deleted ones pile up at the front: at 1,024 per device that was 5% of the bridge.) */
  ring: (string | undefined)[]
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
    const key = `${ts}:${seq}`
    let d = this.devices.get(deviceId)
    if (!d) {
      this.devices.set(deviceId, (d = { highest: seq, recent: new Map(), ring: [], next: 0 }))
      this.remember(d, key, write)
      return 'first'
    }
    if (d.recent.has(key)) {
      this.counts.duplicates++
      return 'duplicate'
    }
    this.remember(d, key, write)
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

  private remember(d: DeviceSeq, key: string, write: Promise<unknown> | null): void {
    const old = d.ring[d.next]
    if (old !== undefined) d.recent.delete(old)
    d.ring[d.next] = key
    d.next = (d.next + 1) % this.window
    d.recent.set(key, write)
  }

  /** The write in progress of a reading's first copy, if there is one. */
  firstCopy(deviceId: string, ts: number, seq: number): Promise<unknown> | null {
    return this.devices.get(deviceId)?.recent.get(`${ts}:${seq}`) ?? null
  }

  /** The write of a reading is over (durable): its resends need not wait any more. */
  written(deviceId: string, ts: number, seq: number, write: Promise<unknown>): void {
    const d = this.devices.get(deviceId)
    const key = `${ts}:${seq}`
    if (d && d.recent.get(key) === write) d.recent.set(key, null)
  }

  /** Forgets a reading whose write failed, so that the device's resend is not taken for a duplicate. */
  forget(deviceId: string, ts: number, seq: number): void {
    const d = this.devices.get(deviceId)
    if (!d) return
    const key = `${ts}:${seq}`
    if (!d.recent.delete(key)) return
    // Rare (a failed write): a scan of the ring is fine.
    const at = d.ring.lastIndexOf(key)
    if (at !== -1) d.ring[at] = undefined
  }
}
