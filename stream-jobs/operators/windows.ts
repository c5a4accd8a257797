/** How readings are grouped in event time. Sizes in ms. */
export type WindowSpec =
  | { kind: 'tumbling'; sizeMs: number }
  | { kind: 'hopping'; sizeMs: number; advanceMs: number }
  | { kind: 'session'; gapMs: number }

/** A time window: `start` inclusive, `end` exclusive (ms since epoch). */
export interface Window {
  start: number
  end: number
}

/** `n` rounded down to a multiple of `m`, also for negative `n`. */
export const floorTo = (n: number, m: number): number => n - (((n % m) + m) % m)

/** Rejects specs that would never fire or would assign a reading to no window. */
export function checkWindowSpec(spec: WindowSpec): void {
  const positive = (n: number, name: string) => {
    if (!Number.isInteger(n) || n <= 0)
      throw new RangeError(`${name} must be a positive integer (ms), got ${n}`)
  }
  if (spec.kind === 'session') return positive(spec.gapMs, 'gapMs')
  positive(spec.sizeMs, 'sizeMs')
  if (spec.kind === 'hopping') {
    positive(spec.advanceMs, 'advanceMs')
    if (spec.advanceMs > spec.sizeMs)
      throw new RangeError(`advanceMs (${spec.advanceMs}) must not exceed sizeMs (${spec.sizeMs})`)
  }
}

/**
 * The tumbling or hopping windows a reading at event time `ts` belongs to, oldest first.
 * Windows are aligned to the epoch, as in Kafka Streams and Flink. (Session windows depend on
 * the other readings of a key: see window-aggregate.ts.)
 */
export function windowsFor(ts: number, spec: Exclude<WindowSpec, { kind: 'session' }>): Window[] {
  if (spec.kind === 'tumbling') {
    const start = floorTo(ts, spec.sizeMs)
    return [{ start, end: start + spec.sizeMs }]
  }
  const out: Window[] = []
  // The last window containing ts starts at floor(ts / advance) * advance; earlier ones step back.
  for (let start = floorTo(ts, spec.advanceMs); start > ts - spec.sizeMs; start -= spec.advanceMs) {
    out.push({ start, end: start + spec.sizeMs })
  }
  return out.reverse()
}
