import { RejectError } from '../errors'

/** 2000-01-01T00:00:00Z: earlier event times are clocks that were never set. */
export const MIN_EVENT_TIME = 946_684_800_000
/** Numbers below this are seconds since the epoch (1e11 s is the year 5138; 1e11 ms is 1973). */
const SECONDS_BELOW = 1e11
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/

/** An event time and whether it was taken from the receive time because the device sent none. */
export interface EventTime {
  ts: number
  missing: boolean
}

/**
 * Reads a device timestamp: milliseconds or seconds since the epoch (number or numeric
 * string), or ISO 8601 with a zone. Missing → the receive time, flagged. Rejects times before
 * 2000 and times further ahead of the receive time than `maxFutureSkewMs`.
 */
export function parseEventTime(value: unknown, receivedAt: number, maxFutureSkewMs: number): EventTime {
  if (value === undefined || value === null) return { ts: receivedAt, missing: true }
  let ms: number
  if (typeof value === 'number' || (typeof value === 'string' && /^\d+(\.\d+)?$/.test(value))) {
    const n = Number(value)
    ms = Math.round(n < SECONDS_BELOW ? n * 1000 : n)
  } else if (typeof value === 'string' && ISO_8601.test(value)) {
    ms = Date.parse(value)
  } else {
    throw new RejectError(
      'FS_BRIDGE_TIMESTAMP',
      `timestamp ${JSON.stringify(value).slice(0, 60)} is not ms, s or ISO 8601 with a zone`,
    )
  }
  if (!Number.isFinite(ms))
    throw new RejectError(
      'FS_BRIDGE_TIMESTAMP',
      `timestamp ${String(value).slice(0, 60)} is not a valid time`,
    )
  if (ms < MIN_EVENT_TIME)
    throw new RejectError(
      'FS_BRIDGE_TIMESTAMP',
      `timestamp ${new Date(ms).toISOString()} is before 2000-01-01 (device clock not set?)`,
    )
  if (ms > receivedAt + maxFutureSkewMs) {
    throw new RejectError(
      'FS_BRIDGE_TIMESTAMP',
      `timestamp ${new Date(ms).toISOString()} is ${Math.round((ms - receivedAt) / 1000)} s in the future (limit ${maxFutureSkewMs / 1000} s)`,
    )
  }
  return { ts: ms, missing: false }
}
