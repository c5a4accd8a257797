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
  /** Recent (ts, seq) keys, oldest first, for exact-duplicate detection. */
  recent: Set<string>
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

  /** Classifies a reading and remembers it (unless it is a duplicate). */
  observe(deviceId: string, ts: number, seq: number | null): SeqVerdict {
    if (seq === null) return 'none'
    const key = `${ts}:${seq}`
    let d = this.devices.get(deviceId)
    if (!d) {
      this.devices.set(deviceId, (d = { highest: seq, recent: new Set([key]) }))
      return 'first'
    }
    if (d.recent.has(key)) {
      this.counts.duplicates++
      return 'duplicate'
    }
    d.recent.add(key)
    if (d.recent.size > this.window) d.recent.delete(d.recent.values().next().value as string)
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

  /** Forgets a reading whose write failed, so that the device's resend is not taken for a duplicate. */
  forget(deviceId: string, ts: number, seq: number): void {
    this.devices.get(deviceId)?.recent.delete(`${ts}:${seq}`)
  }
}
