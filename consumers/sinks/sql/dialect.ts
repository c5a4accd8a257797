import type { ColumnType, TableSpec } from './tables'

/**
 * The SQL that PostgreSQL and CrateDB share, rendered for each. The model is one (sql/tables.ts);
 * the dialects differ in type names, in how a batch travels and in CrateDB's table layout:
 *
 * - PostgreSQL: one statement per batch, one array parameter per column, `unnest`ed
 *   (`$1::text[]`…), `ON CONFLICT … DO UPDATE … WHERE` to order updates.
 * - CrateDB: one statement with a row of `?` parameters, sent once with `bulk_args` (CrateDB's
 *   bulk operation) over its HTTP `_sql` endpoint; `OBJECT(DYNAMIC)` for metrics, tables
 *   partitioned by month (a generated column, part of the key as CrateDB requires) and
 *   clustered by device; no WHERE on `ON CONFLICT DO UPDATE`, so updates follow Kafka order.
 *
 * Only validated identifiers (table and column names from the model, metric names checked
 * against METRIC_NAME) are ever part of the text; every value is a parameter.
 */
export interface SqlDialect {
  name: 'postgres' | 'cratedb' | 'sqlite'
  /** `columns`: parameters are one array per column; `rows`: one parameter row per record. */
  bulk: 'columns' | 'rows'
  /** The placeholder of parameter `i` (1-based). */
  p(i: number): string
  type(t: ColumnType): string
  /** A record's value as this dialect's driver wants it (timestamps arrive as epoch ms). */
  value(t: ColumnType, v: unknown): unknown
  createTable<T>(spec: TableSpec<T>): string[]
  upsert<T>(spec: TableSpec<T>): string
  /** Deletes the rows whose keys are given (bulk, like upsert). */
  deleteByKey<T>(spec: TableSpec<T>): string
  /** Raises each device's last_seen to the given time (never lowers it). */
  upsertLastSeen(): string
  /** An epoch-ms expression of a timestamp column. */
  epochMs(column: string): string
  /**
   * The numeric value of `metric` in the metrics object, and a condition that it is a number.
   * `param()` adds the metric name as a parameter where the dialect can take it as one.
   */
  metricValue(metric: string, param: () => string): { expr: string; isNumber: string }
  /** The value at the latest `ts` of a group. */
  lastValue(expr: string, orderColumn: string): string
  /** The start of `column`'s interval: `floor(ms / interval) × interval`; `param()` adds the interval. */
  bucket(column: string, param: () => string): string
}

/** Metric names that may appear in SQL text (CrateDB object subscripts cannot be parameters). */
export const METRIC_NAME = /^[A-Za-z_][A-Za-z0-9_:-]{0,127}$/

const PG_TYPES: Record<ColumnType, string> = {
  text: 'text',
  bigint: 'bigint',
  int: 'integer',
  double: 'double precision',
  timestamp: 'timestamptz',
  object: 'jsonb',
  boolean: 'boolean',
}

/** Array casts for unnest (`double precision[]` is spelled float8[] to stay one token). */
const PG_ARRAY: Record<ColumnType, string> = { ...PG_TYPES, double: 'float8' }

const CRATE_TYPES: Record<ColumnType, string> = {
  text: 'TEXT',
  bigint: 'BIGINT',
  int: 'INTEGER',
  double: 'DOUBLE PRECISION',
  timestamp: 'TIMESTAMP WITH TIME ZONE',
  object: 'OBJECT(DYNAMIC)',
  boolean: 'BOOLEAN',
}

const cols = <T>(spec: TableSpec<T>) => spec.columns.map((c) => c.name)
const updateSet = (set: string[], excluded: string) => set.map((c) => `${c} = ${excluded}.${c}`).join(', ')

export const postgresDialect: SqlDialect = {
  name: 'postgres',
  bulk: 'columns',
  p: (i) => `$${i}`,
  type: (t) => PG_TYPES[t],
  value(t, v) {
    if (v === null || v === undefined) return null
    if (t === 'timestamp') return new Date(v as number)
    if (t === 'object') return JSON.stringify(v)
    return v
  },
  createTable(spec) {
    const defs = spec.columns.map((c) => `${c.name} ${PG_TYPES[c.type]}${c.notNull ? ' NOT NULL' : ''}`)
    const out = [
      `CREATE TABLE IF NOT EXISTS ${spec.name} (${[...defs, `PRIMARY KEY (${spec.key.join(', ')})`].join(', ')})`,
    ]
    if (spec.partitionByMonthOf)
      out.push(
        `CREATE INDEX IF NOT EXISTS ${spec.name}_${spec.partitionByMonthOf} ON ${spec.name} (${spec.partitionByMonthOf})`,
      )
    return out
  },
  upsert(spec) {
    const arrays = spec.columns.map((c, i) => `$${i + 1}::${PG_ARRAY[c.type]}[]`).join(', ')
    const head = `INSERT INTO ${spec.name} (${cols(spec).join(', ')}) SELECT * FROM unnest(${arrays}) ON CONFLICT (${spec.key.join(', ')})`
    const oc = spec.onConflict
    if (oc.kind === 'nothing') return `${head} DO NOTHING`
    const guard = oc.guard
      ? ` WHERE (${oc.guard.map((g) => `EXCLUDED.${g}`).join(', ')}) >= (${oc.guard.map((g) => `${spec.name}.${g}`).join(', ')})`
      : ''
    return `${head} DO UPDATE SET ${updateSet(oc.set, 'EXCLUDED')}${guard}`
  },
  deleteByKey(spec) {
    const byName = new Map(spec.columns.map((c) => [c.name, c]))
    const arrays = spec.key.map((k, i) => `$${i + 1}::${PG_ARRAY[byName.get(k)!.type]}[]`).join(', ')
    return `DELETE FROM ${spec.name} WHERE (${spec.key.join(', ')}) IN (SELECT * FROM unnest(${arrays}))`
  },
  upsertLastSeen: () =>
    `INSERT INTO devices (device_id, tenant, registered, last_seen) SELECT d, t, false, s FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(d, t, s) ` +
    `ON CONFLICT (device_id) DO UPDATE SET last_seen = GREATEST(devices.last_seen, EXCLUDED.last_seen), tenant = COALESCE(devices.tenant, EXCLUDED.tenant)`,
  epochMs: (c) => `(extract(epoch FROM ${c}) * 1000)::bigint`,
  metricValue: (_metric, param) => ({
    expr: `(metrics->>${param()})::float8`,
    isNumber: `jsonb_typeof(metrics->${param()}) = 'number'`,
  }),
  lastValue: (expr, order) => `(array_agg(${expr} ORDER BY ${order} DESC))[1]`,
  bucket: (c, param) => `floor((extract(epoch FROM ${c}) * 1000)::bigint / ${param()}) * ${param()}`,
}

export const crateDialect: SqlDialect = {
  name: 'cratedb',
  bulk: 'rows',
  p: () => '?',
  type: (t) => CRATE_TYPES[t],
  value: (_t, v) => (v === undefined ? null : v),
  createTable(spec) {
    const defs = spec.columns.map((c) => `"${c.name}" ${CRATE_TYPES[c.type]}${c.notNull ? ' NOT NULL' : ''}`)
    const key = spec.key.map((k) => `"${k}"`)
    let tail = ''
    if (spec.partitionByMonthOf) {
      defs.push(
        `"month" TIMESTAMP WITH TIME ZONE GENERATED ALWAYS AS date_trunc('month', "${spec.partitionByMonthOf}")`,
      )
      key.push('"month"')
      tail = ` CLUSTERED BY ("${spec.key[0]}") PARTITIONED BY ("month")`
    }
    return [
      `CREATE TABLE IF NOT EXISTS "${spec.name}" (${[...defs, `PRIMARY KEY (${key.join(', ')})`].join(', ')})${tail}`,
    ]
  },
  upsert(spec) {
    const head = `INSERT INTO "${spec.name}" (${cols(spec)
      .map((c) => `"${c}"`)
      .join(', ')}) VALUES (${spec.columns.map(() => '?').join(', ')})`
    const key = [...spec.key, ...(spec.partitionByMonthOf ? ['month'] : [])].map((k) => `"${k}"`).join(', ')
    const oc = spec.onConflict
    if (oc.kind === 'nothing') return `${head} ON CONFLICT (${key}) DO NOTHING`
    return `${head} ON CONFLICT (${key}) DO UPDATE SET ${oc.set.map((c) => `"${c}" = excluded."${c}"`).join(', ')}`
  },
  deleteByKey(spec) {
    return `DELETE FROM "${spec.name}" WHERE ${spec.key.map((k) => `"${k}" = ?`).join(' AND ')}`
  },
  upsertLastSeen: () =>
    `INSERT INTO "devices" ("device_id", "tenant", "registered", "last_seen") VALUES (?, ?, false, ?) ` +
    `ON CONFLICT ("device_id") DO UPDATE SET "last_seen" = GREATEST("last_seen", excluded."last_seen")`,
  epochMs: (c) => `CAST("${c}" AS BIGINT)`,
  metricValue(metric) {
    if (!METRIC_NAME.test(metric)) throw new Error(`metric name "${metric.slice(0, 64)}" is not allowed`)
    return { expr: `"metrics"['${metric}']`, isNumber: `"metrics"['${metric}'] IS NOT NULL` }
  },
  lastValue: (expr, order) => `max_by(${expr}, "${order}")`,
  bucket: (c, param) => `floor(CAST("${c}" AS BIGINT) / ${param()}) * ${param()}`,
}

const SQLITE_TYPES: Record<ColumnType, string> = {
  text: 'TEXT',
  bigint: 'INTEGER',
  int: 'INTEGER',
  double: 'REAL',
  timestamp: 'INTEGER', // epoch ms
  object: 'TEXT', // JSON
  boolean: 'INTEGER',
}

/**
 * SQLite (the embedded store of `fleetstream up`, through better-sqlite3): timestamps as epoch
 * ms integers, objects as JSON text read with `json_extract`, one prepared statement run per
 * record inside one transaction per batch.
 */
export const sqliteDialect: SqlDialect = {
  name: 'sqlite',
  bulk: 'rows',
  // Numbered (?NNN), so that a parameter used twice (the metric name) binds by number.
  p: (i) => `?${i}`,
  type: (t) => SQLITE_TYPES[t],
  value(t, v) {
    if (v === null || v === undefined) return null
    if (t === 'object') return JSON.stringify(v)
    if (t === 'boolean') return v ? 1 : 0
    return v
  },
  createTable(spec) {
    const defs = spec.columns.map((c) => `${c.name} ${SQLITE_TYPES[c.type]}${c.notNull ? ' NOT NULL' : ''}`)
    const out = [
      `CREATE TABLE IF NOT EXISTS ${spec.name} (${[...defs, `PRIMARY KEY (${spec.key.join(', ')})`].join(', ')}) WITHOUT ROWID`,
    ]
    if (spec.partitionByMonthOf)
      out.push(
        `CREATE INDEX IF NOT EXISTS ${spec.name}_${spec.partitionByMonthOf} ON ${spec.name} (${spec.partitionByMonthOf})`,
      )
    return out
  },
  upsert(spec) {
    const head = `INSERT INTO ${spec.name} (${cols(spec).join(', ')}) VALUES (${spec.columns.map(() => '?').join(', ')}) ON CONFLICT (${spec.key.join(', ')})`
    const oc = spec.onConflict
    if (oc.kind === 'nothing') return `${head} DO NOTHING`
    const guard = oc.guard
      ? ` WHERE (${oc.guard.map((g) => `excluded.${g}`).join(', ')}) >= (${oc.guard.map((g) => `${spec.name}.${g}`).join(', ')})`
      : ''
    return `${head} DO UPDATE SET ${updateSet(oc.set, 'excluded')}${guard}`
  },
  deleteByKey: (spec) => `DELETE FROM ${spec.name} WHERE ${spec.key.map((k) => `${k} = ?`).join(' AND ')}`,
  upsertLastSeen: () =>
    `INSERT INTO devices (device_id, tenant, registered, last_seen) VALUES (?, ?, 0, ?) ` +
    `ON CONFLICT (device_id) DO UPDATE SET last_seen = max(coalesce(devices.last_seen, 0), excluded.last_seen), tenant = coalesce(devices.tenant, excluded.tenant)`,
  epochMs: (c) => c,
  metricValue: (_metric, param) => ({
    expr: `json_extract(metrics, '$."' || ${param()} || '"')`,
    isNumber: `json_type(metrics, '$."' || ${param()} || '"') IN ('integer', 'real')`,
  }),
  // The value of the row with the greatest ts: ts zero-padded, the value after it, max of that.
  lastValue: (expr, order) => `CAST(substr(max(printf('%020d', ${order}) || (${expr})), 21) AS REAL)`,
  // JS numbers bind as REAL: cast, so that the division is an integer one.
  bucket: (c, param) => `(${c} / CAST(${param()} AS INTEGER)) * CAST(${param()} AS INTEGER)`,
}

/** Parameters of one bulk statement: per column arrays (`columns`) or per record rows (`rows`). */
export function bulkParams<T>(d: SqlDialect, spec: TableSpec<T>, records: T[], only?: string[]): unknown[] {
  const columns = only ? only.map((n) => spec.columns.find((c) => c.name === n)!) : spec.columns
  if (d.bulk === 'columns') return columns.map((c) => records.map((r) => d.value(c.type, c.get(r))))
  return records.map((r) => columns.map((c) => d.value(c.type, c.get(r))))
}
