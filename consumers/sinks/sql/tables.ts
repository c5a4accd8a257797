import type { Alert, Device, Rollup, Telemetry } from '../../../schemas/types.generated'
import { ALERT_EVENT_RANK, windowMs } from '../sink'

/** Column types of the shared SQL model; each dialect names them its own way. */
export type ColumnType = 'text' | 'bigint' | 'int' | 'double' | 'timestamp' | 'object' | 'boolean'

/** One column: its name, type, and how a record gives its value (timestamps as epoch ms). */
export interface Column<T> {
  name: string
  type: ColumnType
  notNull?: boolean
  get: (r: T) => unknown
}

/**
 * One table of the model, written in bulk. `onConflict` says what a second write of the same
 * key does: `nothing` (telemetry: the first write stands) or `update` (the listed columns take
 * the new values; `guard` orders updates so an older event never overwrites a newer one).
 */
export interface TableSpec<T> {
  name: string
  columns: Column<T>[]
  key: string[]
  onConflict: { kind: 'nothing' } | { kind: 'update'; set: string[]; guard?: string[] }
  /** Partitioned by month of this timestamp column and clustered by the first key column (CrateDB). */
  partitionByMonthOf?: string
}

export const TELEMETRY: TableSpec<Telemetry> = {
  name: 'telemetry',
  key: ['device_id', 'ts', 'seq'],
  partitionByMonthOf: 'ts',
  onConflict: { kind: 'nothing' },
  columns: [
    { name: 'device_id', type: 'text', notNull: true, get: (r) => r.deviceId },
    { name: 'ts', type: 'timestamp', notNull: true, get: (r) => r.ts },
    // -1 when the device sends no sequence number, so the key has no NULL in it.
    { name: 'seq', type: 'bigint', notNull: true, get: (r) => r.seq ?? -1 },
    { name: 'tenant', type: 'text', get: (r) => r.tenant },
    { name: 'received_at', type: 'timestamp', notNull: true, get: (r) => r.receivedAt },
    { name: 'source', type: 'text', notNull: true, get: (r) => r.source },
    { name: 'metrics', type: 'object', notNull: true, get: (r) => r.metrics },
    { name: 'meta', type: 'object', notNull: true, get: (r) => r.meta },
  ],
}

export const ROLLUPS: TableSpec<Rollup> = {
  name: 'rollups',
  key: ['device_id', 'metric', 'window_ms', 'window_start'],
  partitionByMonthOf: 'window_start',
  columns: [
    { name: 'device_id', type: 'text', notNull: true, get: (r) => r.deviceId },
    { name: 'metric', type: 'text', notNull: true, get: (r) => r.metric },
    { name: 'window_ms', type: 'bigint', notNull: true, get: (r) => windowMs(r) },
    { name: 'window_start', type: 'timestamp', notNull: true, get: (r) => r.windowStart },
    { name: 'window_end', type: 'timestamp', notNull: true, get: (r) => r.windowEnd },
    { name: 'count', type: 'bigint', notNull: true, get: (r) => r.count },
    { name: 'min', type: 'double', get: (r) => r.min },
    { name: 'max', type: 'double', get: (r) => r.max },
    { name: 'sum', type: 'double', get: (r) => r.sum },
    { name: 'avg', type: 'double', get: (r) => r.avg },
    { name: 'first', type: 'double', get: (r) => r.first },
    { name: 'last', type: 'double', get: (r) => r.last },
    { name: 'kind', type: 'text', notNull: true, get: (r) => r.kind },
  ],
  onConflict: {
    kind: 'update',
    set: ['window_end', 'count', 'min', 'max', 'sum', 'avg', 'first', 'last', 'kind'],
  },
}

/** A rollup's key in the table: a later record of the same key corrects (or retracts) it. */
export const rollupKey = (r: Rollup): string =>
  `${r.deviceId}\u0000${r.metric}\u0000${r.windowEnd - r.windowStart}\u0000${r.windowStart}`

/** Alert state: `open` until a `cleared` event. */
export const alertState = (a: Alert): 'open' | 'cleared' => (a.event === 'cleared' ? 'cleared' : 'open')

export const ALERTS: TableSpec<Alert> = {
  name: 'alerts',
  key: ['alert_id'],
  columns: [
    { name: 'alert_id', type: 'text', notNull: true, get: (a) => a.alertId },
    { name: 'rule_id', type: 'text', notNull: true, get: (a) => a.ruleId },
    { name: 'rule_name', type: 'text', notNull: true, get: (a) => a.ruleName },
    { name: 'device_id', type: 'text', notNull: true, get: (a) => a.deviceId },
    { name: 'tenant', type: 'text', get: (a) => a.tenant },
    { name: 'severity', type: 'text', notNull: true, get: (a) => a.severity },
    { name: 'state', type: 'text', notNull: true, get: alertState },
    { name: 'metric', type: 'text', get: (a) => a.metric },
    { name: 'value', type: 'double', get: (a) => a.value },
    { name: 'message', type: 'text', notNull: true, get: (a) => a.message },
    { name: 'raised_at', type: 'timestamp', notNull: true, get: (a) => a.raisedAt },
    { name: 'updated_at', type: 'timestamp', notNull: true, get: (a) => a.ts },
    { name: 'event_rank', type: 'int', notNull: true, get: (a) => ALERT_EVENT_RANK[a.event] },
    { name: 'cleared_at', type: 'timestamp', get: (a) => (a.event === 'cleared' ? a.ts : null) },
    { name: 'acknowledged_at', type: 'timestamp', get: () => null },
    { name: 'acknowledged_by', type: 'text', get: () => null },
  ],
  onConflict: {
    kind: 'update',
    set: ['severity', 'state', 'value', 'message', 'updated_at', 'event_rank', 'cleared_at'],
    guard: ['updated_at', 'event_rank'],
  },
}

/** A device row: the registry entry; `last_seen` is kept by the telemetry writes. */
export const DEVICES: TableSpec<{ deviceId: string; device: Device }> = {
  name: 'devices',
  key: ['device_id'],
  columns: [
    { name: 'device_id', type: 'text', notNull: true, get: (d) => d.deviceId },
    { name: 'tenant', type: 'text', get: (d) => d.device.tenant },
    { name: 'site', type: 'text', get: (d) => d.device.site },
    { name: 'model', type: 'text', get: (d) => d.device.model },
    { name: 'tags', type: 'object', get: (d) => d.device.tags },
    { name: 'limits', type: 'object', get: (d) => d.device.limits },
    { name: 'registered', type: 'boolean', get: () => true },
    { name: 'last_seen', type: 'timestamp', get: () => null },
  ],
  onConflict: { kind: 'update', set: ['tenant', 'site', 'model', 'tags', 'limits', 'registered'] },
}

/** The last-seen upsert's rows: (device_id, tenant, last_seen). */
export interface LastSeen {
  deviceId: string
  tenant: string | null
  ts: number
}

/** Keeps, per key, only the record that a sequence of upserts would leave (the last by `order`). */
export function lastPerKey<T>(
  rows: T[],
  key: (r: T) => string,
  newer: (a: T, b: T) => boolean = () => true,
): T[] {
  const m = new Map<string, T>()
  for (const r of rows) {
    const k = key(r)
    const prev = m.get(k)
    if (prev === undefined || newer(r, prev)) m.set(k, r)
  }
  return [...m.values()]
}
