import type { Alert } from '../../../schemas/types.generated'
import { ALERT_EVENT_RANK, lastSeenByDevice, SinkWriteError, type DeviceChange, type Sink } from '../sink'
import { bulkParams, type SqlDialect } from './dialect'
import { binaryCopy } from './pg-binary-copy'
import { TELEMETRY_SCHEMA_SUPPORTED, telemetryCopy, TranscodeError } from './telemetry-copy'
import {
  ALERTS,
  DEVICES,
  lastPerKey,
  rollupKey,
  ROLLUPS,
  TELEMETRY,
  type LastSeen,
  type TableSpec,
} from './tables'

/** How a SQL sink reaches its database: one statement with parameters, or one bulk statement. */
export interface SqlExecutor {
  /** Runs one statement; returns its rows. Throws SinkWriteError. */
  query(text: string, params: unknown[]): Promise<Record<string, unknown>[]>
  /** Runs a bulk statement (`dialect.bulk` says the parameters' shape). Throws SinkWriteError. */
  bulk(text: string, params: unknown[]): Promise<void>
  /**
   * Optional fast path for rows that are expected to be new (PostgreSQL COPY): writes a binary
   * COPY stream of `spec`'s columns (pg-binary-copy.ts) all or nothing; throws SinkWriteError
   * when it cannot (a key already stored, a value refused).
   */
  copy?<T>(spec: TableSpec<T>, stream: Buffer): Promise<void>
  /**
   * Optional fast path for telemetry still in Avro (SQLite: telemetryRows, on its writer
   * thread): writes the readings of `values` (the bundled telemetry schema, wire framed) with
   * `insert` and their devices' last-seen with `lastSeen`, in one transaction; throws
   * SinkWriteError, not retriable, for a payload it cannot take.
   */
  telemetryAvro?(insert: string, lastSeen: string, values: Buffer[]): Promise<void>
  /**
   * Optional fast path for rollups still in Avro (SQLite: read on its writer thread): applies
   * `values` (the bundled rollup schema, wire framed) as `writeRollups` does — the last record
   * of each key, retractions with `remove`, the rest with `upsert` — in one transaction; throws
   * SinkWriteError, not retriable, for a payload it cannot decode.
   */
  rollupsAvro?(upsert: string, remove: string, values: Buffer[]): Promise<void>
  close(): Promise<void>
}

/**
 * A sink's Avro fast path over an executor's: true when written, false when the general path
 * must decide (a payload the executor refuses, not retriable); a retriable error is thrown.
 */
const avroFastPath =
  (write: (values: Buffer[]) => Promise<void>) =>
  async (values: Buffer[]): Promise<boolean> => {
    if (values.length === 0) return true
    try {
      await write(values)
      return true
    } catch (err) {
      if (err instanceof SinkWriteError && !err.retriable) return false
      throw err
    }
  }

const TABLES: TableSpec<never>[] = [TELEMETRY, ROLLUPS, ALERTS, DEVICES] as TableSpec<never>[]

/** The statements that create the model's tables in a dialect (idempotent). */
export function sqlMigrations(d: SqlDialect): string[] {
  return TABLES.flatMap((t) => d.createTable(t))
}

const alertNewer = (a: Alert, b: Alert) =>
  a.ts > b.ts || (a.ts === b.ts && ALERT_EVENT_RANK[a.event] >= ALERT_EVENT_RANK[b.event])

/** A sink on a SQL store (PostgreSQL or CrateDB), one model rendered by `dialect`. */
export function sqlSink(name: string, d: SqlDialect, x: SqlExecutor): Sink {
  const upsert = <T>(spec: TableSpec<T>, rows: T[]) =>
    rows.length === 0 ? Promise.resolve() : x.bulk(d.upsert(spec), bulkParams(d, spec, rows))
  const remove = <T>(spec: TableSpec<T>, rows: T[]) =>
    rows.length === 0 ? Promise.resolve() : x.bulk(d.deleteByKey(spec), bulkParams(d, spec, rows, spec.key))
  /**
   * Rows that are new in the normal case (telemetry): the executor's all-or-nothing fast path
   * when it has one; when that fails for any reason but the connection (a replay brings keys
   * already stored, or a value is refused), the idempotent statement decides, row by row.
   */
  const insertNew = async <T>(spec: TableSpec<T>, rows: T[]) => {
    if (x.copy && rows.length > 0) {
      try {
        return await x.copy(spec, binaryCopy(spec, rows))
      } catch (err) {
        if (!(err instanceof SinkWriteError) || err.retriable) throw err
      }
    }
    await upsert(spec, rows)
  }
  const lastSeenSql = d.upsertLastSeen()
  const writeLastSeen = async (seen: LastSeen[]) => {
    if (seen.length === 0) return
    // Sorted, so that two writers never lock the same device rows in opposite orders.
    seen.sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0))
    const rows = seen.map((s) => [s.deviceId, s.tenant, d.value('timestamp', s.ts)])
    await x.bulk(lastSeenSql, d.bulk === 'rows' ? rows : [0, 1, 2].map((i) => rows.map((r) => r[i])))
  }
  const copy = x.copy?.bind(x)
  const telemetryAvro = x.telemetryAvro?.bind(x)
  const rollupsAvro = x.rollupsAvro?.bind(x)
  const insertTelemetry = d.upsert(TELEMETRY)
  const [upsertRollups, removeRollups] = [d.upsert(ROLLUPS), d.deleteByKey(ROLLUPS)]
  /** Readings still in Avro straight into COPY or rows (telemetry-copy.ts); false when the general path must decide. */
  const writeTelemetryAvro = !TELEMETRY_SCHEMA_SUPPORTED
    ? undefined
    : telemetryAvro
      ? avroFastPath((values) => telemetryAvro(insertTelemetry, lastSeenSql, values))
      : copy
        ? async (values: Buffer[]): Promise<boolean> => {
            if (values.length === 0) return true
            let t: ReturnType<typeof telemetryCopy>
            try {
              t = telemetryCopy(values)
            } catch (err) {
              if (err instanceof TranscodeError || err instanceof RangeError) return false
              throw err
            }
            try {
              await copy(TELEMETRY, t.copy)
            } catch (err) {
              if (err instanceof SinkWriteError && !err.retriable) return false // e.g. keys already stored
              throw err
            }
            await writeLastSeen(t.lastSeen)
            return true
          }
        : undefined
  return {
    name,
    writeTelemetryAvro,
    writeRollupsAvro:
      rollupsAvro && avroFastPath((values) => rollupsAvro(upsertRollups, removeRollups, values)),
    async connect() {
      for (const m of sqlMigrations(d)) await x.query(m, [])
    },
    async writeTelemetry(rs) {
      // Every store refuses the same readings: the model has no device without an id.
      if (rs.some((r) => r.deviceId.length === 0))
        throw new SinkWriteError(`${name}: a reading with an empty device id`, false)
      await insertNew(TELEMETRY, rs)
      const tenant = new Map(rs.map((r) => [r.deviceId, r.tenant ?? null]))
      await writeLastSeen(
        [...lastSeenByDevice(rs)].map(([deviceId, ts]) => ({ deviceId, tenant: tenant.get(deviceId)!, ts })),
      )
    },
    async writeRollups(rs) {
      // Within a batch only the last record of a key counts (what applying them in order leaves).
      const last = lastPerKey(rs, rollupKey)
      await remove(
        ROLLUPS,
        last.filter((r) => r.kind === 'retract'),
      )
      await upsert(
        ROLLUPS,
        last.filter((r) => r.kind !== 'retract'),
      )
    },
    async writeAlerts(as) {
      const lifecycle = as.filter((a) => a.event !== 'acknowledged')
      await upsert(
        ALERTS,
        lastPerKey(lifecycle, (a) => a.alertId, alertNewer),
      )
      for (const a of as.filter((e) => e.event === 'acknowledged')) {
        await x.query(
          `UPDATE ${d.name === 'cratedb' ? '"alerts"' : 'alerts'} SET acknowledged_at = ${d.p(1)}, acknowledged_by = ${d.p(2)} WHERE alert_id = ${d.p(3)} AND acknowledged_at IS NULL`,
          [d.value('timestamp', a.ts), a.message, a.alertId],
        )
      }
    },
    async writeDevices(cs: DeviceChange[]) {
      const last = lastPerKey(cs, (c) => c.deviceId)
      await remove(DEVICES, last.filter((c) => c.device === null) as never[])
      await upsert(
        DEVICES,
        last.filter(
          (c): c is { deviceId: string; device: NonNullable<DeviceChange['device']> } => c.device !== null,
        ),
      )
    },
    close: () => x.close(),
  }
}
