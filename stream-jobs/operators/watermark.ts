/** Event-time settings of a job. */
export interface WatermarkOptions {
  /** How far out of order readings may arrive (the bounded out-of-orderness), ms. */
  outOfOrdernessMs: number
  /** After this long without readings (processing time), the watermark moves on by itself. */
  idleTimeoutMs: number
  /** Readings further ahead of processing time than this are rejected (device clock skew). */
  maxFutureMs: number
}

/** The watermark of one stream (a partition, or a device): no smaller event time is expected. */
export interface WatermarkState {
  maxEventTs: number
  /** Processing time of the last reading. */
  lastArrival: number
  watermark: number
}

/** A stream that has seen nothing: its watermark holds nothing back yet. */
export function newWatermark(): WatermarkState {
  return {
    maxEventTs: Number.NEGATIVE_INFINITY,
    lastArrival: Number.NEGATIVE_INFINITY,
    watermark: Number.NEGATIVE_INFINITY,
  }
}

/** Why a reading is refused before it reaches a window. */
export type TimeVerdict = 'ok' | 'future'

/** Checks a reading's event time against processing time `now` (clock-skew cap). */
export function checkEventTime(ts: number, now: number, opts: WatermarkOptions): TimeVerdict {
  return ts > now + opts.maxFutureMs ? 'future' : 'ok'
}

/** Records a reading at event time `ts`, arriving at processing time `now`; the watermark never goes back. */
export function observe(
  state: WatermarkState,
  ts: number,
  now: number,
  opts: WatermarkOptions,
): WatermarkState {
  const maxEventTs = Math.max(state.maxEventTs, ts)
  return {
    maxEventTs,
    lastArrival: now,
    watermark: Math.max(state.watermark, maxEventTs - opts.outOfOrdernessMs),
  }
}

/**
 * The watermark at processing time `now`: the largest event time seen minus the bound, and,
 * once the stream has been idle for `idleTimeoutMs`, moving on with processing time from
 * there, so the windows of a device or partition that stopped sending still close.
 */
export function watermarkAt(state: WatermarkState, now: number, opts: WatermarkOptions): WatermarkState {
  const idleFor = now - state.lastArrival
  if (!Number.isFinite(state.maxEventTs) || idleFor < opts.idleTimeoutMs) return state
  const advanced = state.maxEventTs + idleFor - opts.outOfOrdernessMs
  return advanced > state.watermark ? { ...state, watermark: advanced } : state
}

/** The watermark of several streams (the partitions of a task): the slowest non-idle one. */
export function combinedWatermark(states: WatermarkState[]): number {
  return states.length === 0 ? Number.NEGATIVE_INFINITY : Math.min(...states.map((s) => s.watermark))
}
