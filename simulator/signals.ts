/**
 * Realistic device signals, deterministic from a seed (so a test can recompute them): a
 * temperature with a daily cycle, a slow wander and a sensor's small noise, humidity moving
 * against it, vibration with occasional spikes, and a battery that drains and recharges.
 */

/** A small, fast seeded PRNG (mulberry32): [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** One reading's metrics. */
export interface Signals {
  temperature: number
  humidity: number
  vibration: number
  battery: number
}

const DAY = 86_400_000
const MINUTE = 60_000
const round = (v: number, d = 2) => Math.round(v * 10 ** d) / 10 ** d

/**
 * The signal generator of one device. `spikeChance` is the chance per reading of a vibration
 * (and temperature) spike, the kind of out-of-range value the example rules alert on.
 */
export function deviceSignals(device: number, opts: { spikeChance?: number } = {}) {
  const rand = prng(0x5eed + device * 7919)
  const base = 18 + rand() * 8 // each device's own climate
  const phase = rand() * DAY
  const wanderPhase = rand() * 2 * Math.PI
  let battery = 60 + rand() * 40
  let charging = false
  const drain = 0.02 + rand() * 0.05 // % per reading
  return (ts: number): Signals => {
    const daily = Math.sin((((ts + phase) % DAY) / DAY) * 2 * Math.PI)
    const spike = rand() < (opts.spikeChance ?? 0.001)
    // Air temperature moves slowly: a daily cycle, a wander of a few tenths over minutes (at most
    // ~0.2 °C/min), and a sensor's noise of ±0.03 °C (an SHT3x repeats to ~0.04). Noise that
    // jumps tenths of a degree between readings a second apart reads as degrees per minute and
    // trips the example rate rule (5 °C/min) on a healthy device; a spike still trips it.
    const wander = 0.4 * Math.sin((2 * Math.PI * ts) / (13 * MINUTE) + wanderPhase)
    const temperature = base + 4 * daily + wander + (rand() - 0.5) * 0.06 + (spike ? 25 : 0)
    const humidity = Math.min(100, Math.max(0, 55 - 12 * daily + (rand() - 0.5) * 3))
    const vibration = Math.abs((rand() - 0.5) * 0.4) + (spike ? 5 + rand() * 5 : 0)
    if (charging) {
      battery += 1.5
      if (battery >= 100) {
        battery = 100
        charging = false
      }
    } else {
      battery -= drain
      if (battery <= 8) charging = true
    }
    return {
      temperature: round(temperature),
      humidity: round(humidity, 1),
      vibration: round(vibration, 3),
      battery: round(battery, 1),
    }
  }
}
