import type { Alert, Device, Rollup, Telemetry } from '../../schemas/types.generated'

/** A database error for one batch: `retriable` when trying again can help (connection lost, timeout). */
export class SinkWriteError extends Error {
  constructor(
    message: string,
    readonly retriable: boolean,
    cause?: unknown,
  ) {
    super(message, { cause })
  }
}

/** A registry change from `iot.devices`: the entry, or `null` for a tombstone (device removed). */
export interface DeviceChange {
  deviceId: string
  device: Device | null
}

/**
 * A store the sinks write to (STYLE: connect(), write…(records), close()). Every write is
 * idempotent — a replay or a redelivery leaves the same rows — and throws SinkWriteError.
 *
 * - telemetry: one row per reading, keyed by `(device_id, ts, seq)`; nothing is overwritten.
 * - rollups: one row per (device, metric, window size, window start), upserted (a late
 *   correction overwrites; a `retract` deletes).
 * - alerts: one row per alert id, its state following the events in event-time order.
 * - devices: the registry entry (tombstone deletes) and, from telemetry, the last-seen time.
 */
export interface Sink {
  name: string
  /** Connects and runs the migrations (creates or alters the tables). */
  connect(): Promise<void>
  writeTelemetry(readings: Telemetry[]): Promise<void>
  /**
   * Optional fast path: readings still encoded (Confluent wire format, the current telemetry
   * schema id), written all or nothing with the same result as `writeTelemetry` of their
   * decoded form. Resolves false when it cannot take them (then `writeTelemetry` decides).
   */
  writeTelemetryAvro?(values: Buffer[]): Promise<boolean>
  /**
   * Optional: rollups still in Avro (framed with the bundled rollup schema's id), with the same
   * result as `writeRollups` of their decoded form, without decoding them on the caller's
   * thread. Resolves false when it cannot take them (then `writeRollups` decides).
   */
  writeRollupsAvro?(values: Buffer[]): Promise<boolean>
  writeRollups(rollups: Rollup[]): Promise<void>
  writeAlerts(alerts: Alert[]): Promise<void>
  writeDevices(changes: DeviceChange[]): Promise<void>
  close(): Promise<void>
}

/** Order of alert events at the same event time: a later rank wins (raised < updated < cleared). */
export const ALERT_EVENT_RANK: Record<Alert['event'], number> = {
  raised: 0,
  updated: 1,
  cleared: 2,
  acknowledged: 3,
}

/** Window size of a rollup in ms (1m → 60000). */
export const windowMs = (r: Rollup): number => r.windowEnd - r.windowStart

/** Telemetry sorted by nothing, reduced to each device's latest event time (for last-seen). */
export function lastSeenByDevice(readings: Telemetry[]): Map<string, number> {
  const seen = new Map<string, number>()
  for (const r of readings) {
    const prev = seen.get(r.deviceId)
    if (prev === undefined || r.ts > prev) seen.set(r.deviceId, r.ts)
  }
  return seen
}
