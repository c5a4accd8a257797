import type { MetricValue } from '../decode/readings'

/** What happens to a reading whose metrics change type or bring new names. */
export type DriftPolicy = 'accept' | 'reject' | 'deadletter'

/** The drift found in one reading, if any. */
export interface Drift {
  newMetrics: string[]
  changedType: { metric: string; was: string; now: string }[]
}

const typeOf = (v: MetricValue): string => typeof v

/**
 * Learns each device's metric names and types from its first accepted reading, and reports
 * later readings that bring new names or change a type. Memory is bounded per device.
 */
export class DriftTracker {
  private readonly known = new Map<string, Map<string, string>>()

  constructor(private readonly maxMetricsPerDevice = 512) {}

  /** The drift of `metrics` against what the device sent before; undefined when none (or first reading). */
  check(deviceId: string, metrics: Record<string, MetricValue>): Drift | undefined {
    const types = this.known.get(deviceId)
    if (!types) return undefined
    // Built only when there is drift: this runs for every reading.
    let drift: Drift | undefined
    for (const name in metrics) {
      const value = metrics[name]!
      const was = types.get(name)
      if (was === undefined) (drift ??= { newMetrics: [], changedType: [] }).newMetrics.push(name)
      else if (was !== typeOf(value))
        (drift ??= { newMetrics: [], changedType: [] }).changedType.push({
          metric: name,
          was,
          now: typeOf(value),
        })
    }
    return drift
  }

  /** Records an accepted reading's metrics as known for the device. */
  learn(deviceId: string, metrics: Record<string, MetricValue>): void {
    let types = this.known.get(deviceId)
    if (!types) this.known.set(deviceId, (types = new Map()))
    for (const name in metrics) {
      const value = metrics[name]!
      if (!types.has(name) && types.size >= this.maxMetricsPerDevice) continue
      types.set(name, typeOf(value))
    }
  }
}

/** A human sentence for a drift, used as the dead-letter reason. */
export function describeDrift(d: Drift): string {
  const parts: string[] = []
  if (d.newMetrics.length) parts.push(`new metrics ${d.newMetrics.join(', ')}`)
  for (const c of d.changedType) parts.push(`${c.metric} changed from ${c.was} to ${c.now}`)
  return `schema drift: ${parts.join('; ')}`
}
