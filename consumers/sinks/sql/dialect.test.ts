import { binaryCopy } from './pg-binary-copy'
import { bulkParams, crateDialect, postgresDialect, sqliteDialect } from './dialect'
import { sqlMigrations } from './sql-sink'
import { ALERTS, DEVICES, ROLLUPS, TELEMETRY } from './tables'

const reading = {
  deviceId: 'd1',
  tenant: null,
  ts: Date.UTC(2026, 0, 2),
  receivedAt: Date.UTC(2026, 0, 2, 0, 0, 1),
  seq: null,
  metrics: { t: 21.5, ok: true },
  meta: {},
  source: 'mqtt' as const,
}

describe('consumers > sinks > sql dialects', () => {
  it('PostgreSQL: one unnest statement per batch, typed arrays, DO NOTHING on the idempotency key', () => {
    expect(postgresDialect.upsert(TELEMETRY)).toBe(
      'INSERT INTO telemetry (device_id, ts, seq, tenant, received_at, source, metrics, meta) SELECT * FROM unnest(' +
        '$1::text[], $2::timestamptz[], $3::bigint[], $4::text[], $5::timestamptz[], $6::text[], $7::jsonb[], $8::jsonb[]) ' +
        'ON CONFLICT (device_id, ts, seq) DO NOTHING',
    )
    // Column arrays; a missing seq is -1 so that the key has no NULL; objects as JSON text.
    expect(bulkParams(postgresDialect, TELEMETRY, [reading])).toEqual([
      ['d1'],
      [new Date(reading.ts)],
      [-1],
      [null],
      [new Date(reading.receivedAt)],
      ['mqtt'],
      ['{"t":21.5,"ok":true}'],
      ['{}'],
    ])
  })

  it('PostgreSQL: rollups upsert, alerts upsert only when the event is not older, deletes by key', () => {
    expect(postgresDialect.upsert(ROLLUPS)).toMatch(
      /ON CONFLICT \(device_id, metric, window_ms, window_start\) DO UPDATE SET window_end = EXCLUDED\.window_end, count = EXCLUDED\.count, .* kind = EXCLUDED\.kind$/,
    )
    expect(postgresDialect.upsert(ALERTS)).toMatch(
      / WHERE \(EXCLUDED\.updated_at, EXCLUDED\.event_rank\) >= \(alerts\.updated_at, alerts\.event_rank\)$/,
    )
    expect(postgresDialect.deleteByKey(DEVICES)).toBe(
      'DELETE FROM devices WHERE (device_id) IN (SELECT * FROM unnest($1::text[]))',
    )
    expect(postgresDialect.upsertLastSeen()).toContain(
      'last_seen = GREATEST(devices.last_seen, EXCLUDED.last_seen)',
    )
  })

  it('CrateDB: OBJECT(DYNAMIC) metrics, partitioned by month, clustered by device; one row of ? per record for bulk_args', () => {
    const [create] = crateDialect.createTable(TELEMETRY)
    expect(create).toBe(
      'CREATE TABLE IF NOT EXISTS "telemetry" ("device_id" TEXT NOT NULL, "ts" TIMESTAMP WITH TIME ZONE NOT NULL, ' +
        '"seq" BIGINT NOT NULL, "tenant" TEXT, "received_at" TIMESTAMP WITH TIME ZONE NOT NULL, "source" TEXT NOT NULL, ' +
        '"metrics" OBJECT(DYNAMIC) NOT NULL, "meta" OBJECT(DYNAMIC) NOT NULL, ' +
        `"month" TIMESTAMP WITH TIME ZONE GENERATED ALWAYS AS date_trunc('month', "ts"), ` +
        'PRIMARY KEY ("device_id", "ts", "seq", "month")) CLUSTERED BY ("device_id") PARTITIONED BY ("month")',
    )
    expect(crateDialect.upsert(TELEMETRY)).toBe(
      'INSERT INTO "telemetry" ("device_id", "ts", "seq", "tenant", "received_at", "source", "metrics", "meta") ' +
        'VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT ("device_id", "ts", "seq", "month") DO NOTHING',
    )
    expect(crateDialect.upsert(ROLLUPS)).toContain('DO UPDATE SET "window_end" = excluded."window_end"')
    // Rows, timestamps as epoch ms, objects as they are (JSON carries them).
    expect(bulkParams(crateDialect, TELEMETRY, [reading])).toEqual([
      ['d1', reading.ts, -1, null, reading.receivedAt, 'mqtt', { t: 21.5, ok: true }, {}],
    ])
  })

  it('every statement text comes from the model: no value ever appears in it', () => {
    const hostile = { ...reading, deviceId: "x'); DROP TABLE telemetry; --" }
    for (const d of [postgresDialect, crateDialect]) {
      expect(d.upsert(TELEMETRY)).not.toContain('DROP')
      expect(JSON.stringify(bulkParams(d, TELEMETRY, [hostile]))).toContain('DROP TABLE')
      for (const m of sqlMigrations(d)) expect(m).toMatch(/^CREATE (TABLE|INDEX) IF NOT EXISTS /)
    }
  })

  it('SQLite (the embedded store): WITHOUT ROWID tables, numbered parameters, the same ordered alert upsert', () => {
    expect(sqliteDialect.createTable(TELEMETRY)[0]).toMatch(
      /PRIMARY KEY \(device_id, ts, seq\)\) WITHOUT ROWID$/,
    )
    expect(sqliteDialect.upsert(ALERTS)).toMatch(
      / WHERE \(excluded\.updated_at, excluded\.event_rank\) >= \(alerts\.updated_at, alerts\.event_rank\)$/,
    )
    expect(sqliteDialect.p(3)).toBe('?3')
    expect(bulkParams(sqliteDialect, TELEMETRY, [reading])[0]).toEqual([
      'd1',
      reading.ts,
      -1,
      null,
      reading.receivedAt,
      'mqtt',
      '{"t":21.5,"ok":true}',
      '{}',
    ])
  })

  it('CrateDB metric subscripts take only plain names (they cannot be parameters)', () => {
    expect(crateDialect.metricValue('temperature', () => '?').expr).toBe(`"metrics"['temperature']`)
    expect(() => crateDialect.metricValue("t'] OR 1=1 --", () => '?')).toThrow(/not allowed/)
  })
})

describe('consumers > sinks > PostgreSQL binary COPY', () => {
  it('writes the header, one tuple per row (NULL as -1, jsonb with its version byte, µs since 2000) and the trailer', () => {
    const r = { ...reading, deviceId: 'a\tb', metrics: { note: 'x\ty' } }
    const b = binaryCopy(TELEMETRY, [r])
    expect(b.subarray(0, 11).toString('latin1')).toBe('PGCOPY\n\xff\r\n\0')
    expect([b.readInt32BE(11), b.readInt32BE(15)]).toEqual([0, 0])
    let at = 19
    expect(b.readInt16BE(at)).toBe(TELEMETRY.columns.length)
    at += 2
    const field = () => {
      const n = b.readInt32BE(at)
      at += 4
      if (n < 0) return null
      const f = b.subarray(at, at + n)
      at += n
      return f
    }
    expect(field()!.toString()).toBe('a\tb') // device_id: raw, no escaping
    const PG_EPOCH_MS = Date.UTC(2000, 0, 1)
    expect(field()!.readBigInt64BE()).toBe(BigInt(r.ts - PG_EPOCH_MS) * 1000n) // ts
    expect(field()!.readBigInt64BE()).toBe(-1n) // seq
    expect(field()).toBeNull() // tenant
    expect(field()!.readBigInt64BE()).toBe(BigInt(r.receivedAt - PG_EPOCH_MS) * 1000n)
    expect(field()!.toString()).toBe('mqtt')
    const metrics = field()!
    expect([metrics[0], metrics.subarray(1).toString()]).toEqual([1, '{"note":"x\\ty"}'])
    expect(field()!.subarray(1).toString()).toBe('{}')
    expect(b.readInt16BE(at)).toBe(-1)
    expect(at + 2).toBe(b.length)
  })
})
