/**
 * Token buckets per key (device): `ratePerS` tokens a second up to `burst`. Time is an
 * argument, so tests need no clock. Idle buckets are dropped to bound memory.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()
  private lastSweep = 0

  constructor(
    private readonly ratePerS: number,
    private readonly burst: number,
  ) {}

  /** Takes `n` tokens for `key` at time `now` (ms); false when the device is over its rate. */
  take(key: string, now: number, n = 1): boolean {
    if (this.ratePerS <= 0) return true
    this.sweep(now)
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.ratePerS)
    b.at = now
    this.buckets.set(key, b)
    if (b.tokens < n) return false
    b.tokens -= n
    return true
  }

  /** Seconds until `key` may send `n` again. */
  retryAfterS(key: string, n = 1): number {
    const b = this.buckets.get(key)
    if (!b || this.ratePerS <= 0) return 0
    return Math.max(1, Math.ceil((n - b.tokens) / this.ratePerS))
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < 60_000) return
    this.lastSweep = now
    const full = (this.burst / this.ratePerS) * 1000
    for (const [k, b] of this.buckets) if (now - b.at > full) this.buckets.delete(k)
  }
}
