/** The running aggregate of one metric in one window: count, min, max, sum, first, last. */
export interface Aggregate {
  count: number
  min: number
  max: number
  sum: number
  /** Value and event time of the earliest and latest reading (by event time, not arrival). */
  first: number
  firstTs: number
  last: number
  lastTs: number
}

/** The aggregate of a single reading. */
export function aggregateOf(value: number, ts: number): Aggregate {
  return { count: 1, min: value, max: value, sum: value, first: value, firstTs: ts, last: value, lastTs: ts }
}

/**
 * Combines two aggregates (a reading into a window, or two session windows). Commutative and
 * associative, so the result does not depend on arrival order; ties in event time keep the
 * smaller value for `first` and the larger for `last`, so even ties are order-independent.
 */
export function combine(a: Aggregate, b: Aggregate): Aggregate {
  const firstFromA = a.firstTs < b.firstTs || (a.firstTs === b.firstTs && a.first <= b.first)
  const lastFromA = a.lastTs > b.lastTs || (a.lastTs === b.lastTs && a.last >= b.last)
  return {
    count: a.count + b.count,
    min: Math.min(a.min, b.min),
    max: Math.max(a.max, b.max),
    sum: a.sum + b.sum,
    first: firstFromA ? a.first : b.first,
    firstTs: firstFromA ? a.firstTs : b.firstTs,
    last: lastFromA ? a.last : b.last,
    lastTs: lastFromA ? a.lastTs : b.lastTs,
  }
}

/** Adds one reading to `a` in place: the same result as `combine(a, aggregateOf(value, ts))`
 * without allocating (the hot path of every windowed job). */
export function addTo(a: Aggregate, value: number, ts: number): void {
  a.count += 1
  if (value < a.min) a.min = value
  if (value > a.max) a.max = value
  a.sum += value
  if (ts < a.firstTs || (ts === a.firstTs && value < a.first)) {
    a.first = value
    a.firstTs = ts
  }
  if (ts > a.lastTs || (ts === a.lastTs && value > a.last)) {
    a.last = value
    a.lastTs = ts
  }
}

/** The mean of an aggregate. */
export function avg(a: Aggregate): number {
  return a.sum / a.count
}
