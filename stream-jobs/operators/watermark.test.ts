import { checkEventTime, combinedWatermark, newWatermark, observe, watermarkAt } from './watermark'

const opts = { outOfOrdernessMs: 5_000, idleTimeoutMs: 30_000, maxFutureMs: 60_000 }

describe('stream-jobs > windows > watermarks', () => {
  it('is the largest event time minus the bound, and never goes back', () => {
    let s = newWatermark()
    const seen: number[] = []
    for (const ts of [10_000, 20_000, 12_000, 30_000, 29_000]) {
      s = observe(s, ts, 1000, opts)
      seen.push(s.watermark)
    }
    expect(seen).toEqual([5_000, 15_000, 15_000, 25_000, 25_000])
  })

  it('moves on with processing time once the stream is idle, so windows still close', () => {
    let s = observe(newWatermark(), 100_000, 1_000_000, opts)
    expect(watermarkAt(s, 1_029_999, opts).watermark).toBe(95_000) // not idle yet
    s = watermarkAt(s, 1_040_000, opts)
    expect(s.watermark).toBe(100_000 + 40_000 - 5_000)
    expect(watermarkAt(newWatermark(), 5_000_000, opts).watermark).toBe(Number.NEGATIVE_INFINITY) // nothing seen: nothing to advance
  })

  it('rejects event times too far ahead of processing time', () => {
    expect(checkEventTime(160_001, 100_000, opts)).toBe('future')
    expect(checkEventTime(160_000, 100_000, opts)).toBe('ok')
  })

  it('the watermark of several partitions is the slowest', () => {
    const a = observe(newWatermark(), 50_000, 0, opts)
    const b = observe(newWatermark(), 20_000, 0, opts)
    expect(combinedWatermark([a, b])).toBe(15_000)
  })
})
