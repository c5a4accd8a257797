import { deviceSignals, prng } from './signals'

describe('simulator > signals', () => {
  it('are deterministic per device, within physical ranges, with a battery that drains and recharges', () => {
    const a = deviceSignals(3)
    const b = deviceSignals(3)
    const t0 = Date.UTC(2026, 0, 1)
    const xs = Array.from({ length: 20_000 }, (_, i) => a(t0 + i * 60_000))
    expect(Array.from({ length: 20_000 }, (_, i) => b(t0 + i * 60_000))).toEqual(xs)
    for (const x of xs) {
      expect(x.humidity).toBeGreaterThanOrEqual(0)
      expect(x.humidity).toBeLessThanOrEqual(100)
      expect(x.battery).toBeGreaterThanOrEqual(0)
      expect(x.battery).toBeLessThanOrEqual(100)
      expect(x.vibration).toBeGreaterThanOrEqual(0)
    }
    const battery = xs.map((x) => x.battery)
    const falls = battery.slice(1).filter((v, i) => v < battery[i]!).length
    const rises = battery.slice(1).filter((v, i) => v > battery[i]!).length
    expect(falls).toBeGreaterThan(rises)
    expect(rises).toBeGreaterThan(0) // it recharged at least once
    // A daily temperature cycle: the day's range is several degrees.
    const day = xs
      .slice(0, 1440)
      .map((x) => x.temperature)
      .filter((t) => t < 40)
    expect(Math.max(...day) - Math.min(...day)).toBeGreaterThan(5)
    // Spikes happen, rarely.
    const spikes = xs.filter((x) => x.vibration > 4).length
    expect(spikes).toBeGreaterThan(0)
    expect(spikes).toBeLessThan(xs.length / 100)
  })

  it("a healthy device's temperature, read every second, stays under the example rate rule's 5 °C/min; spikes exceed it", () => {
    const t0 = Date.UTC(2026, 0, 1)
    let fast = 0
    let spikes = 0
    for (let d = 0; d < 50; d++) {
      const s = deviceSignals(d, { spikeChance: 0.01 })
      let prev = s(t0)
      for (let i = 1; i < 2_000; i++) {
        const x = s(t0 + i * 1000)
        const spike = x.vibration > 4 || prev.vibration > 4
        const perMinute = Math.abs(x.temperature - prev.temperature) * 60
        if (spike) spikes += perMinute > 5 ? 1 : 0
        else fast += perMinute > 5 ? 1 : 0
        prev = x
      }
    }
    expect(fast).toBe(0)
    expect(spikes).toBeGreaterThan(100) // a spike and its fall: both are fast
  })

  it('prng is uniform enough', () => {
    const r = prng(42)
    const xs = Array.from({ length: 10_000 }, r)
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length
    expect(mean).toBeGreaterThan(0.48)
    expect(mean).toBeLessThan(0.52)
  })
})
