import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { AvroCodec } from '../../core/envelope/codec'
import { LocalSchemaRegistry } from '../../core/envelope/registry'
import { createTelemetryCodec } from '../../core/envelope/telemetry'
import type { Rollup, Telemetry } from '../../schemas/types.generated'
import { SinkWriteError, type Sink } from './sink'
import {
  openSqlite,
  sqliteExecutor,
  sqliteRequestLoop,
  sqliteSink,
  sqliteWorkerExecutor,
  type SqliteReply,
} from './sqlite'

/** Two SQLite sinks, connected, on files of their own: one to write through the general path, one through a fast path. */
async function generalAndFast(
  file: () => string,
  run: (general: Sink, fast: Sink, files: { general: string; fast: string }) => Promise<void>,
): Promise<void> {
  const files = { general: file(), fast: file() }
  const general = sqliteSink({ file: files.general })
  const fast = sqliteSink({ file: files.fast })
  try {
    await general.connect()
    await fast.connect()
    await run(general, fast, files)
  } finally {
    await general.close()
    await fast.close()
  }
}

describe('consumers > sinks > sqlite on its writer thread', () => {
  const file = () => path.join(mkdtempSync(path.join(tmpdir(), 'fs-sqlite-thread-')), 'x.db')

  it('writes in bulk and reads back, Buffers included; the rows are on disk when bulk resolves', async () => {
    const f = file()
    const x = sqliteWorkerExecutor(f)
    try {
      await x.query('CREATE TABLE t (k TEXT PRIMARY KEY, n REAL, b BLOB)', [])
      await x.bulk('INSERT INTO t (k, n, b) VALUES (?, ?, ?)', [
        ['a', 1.5, Buffer.from([1, 2, 3])],
        ['b', -2, null],
      ])
      // Another connection (as the query API has) sees the committed rows.
      const other = openSqlite(f)
      expect(other.prepare('SELECT k, n, b FROM t ORDER BY k').all()).toEqual([
        { k: 'a', n: 1.5, b: Buffer.from([1, 2, 3]) },
        { k: 'b', n: -2, b: null },
      ])
      other.close()
      expect(await x.query('SELECT n FROM t WHERE k = ?1', ['a'])).toEqual([{ n: 1.5 }])
    } finally {
      await x.close()
    }
  })

  it('rejects a failing statement with a SinkWriteError, all of the bulk or none of it, and keeps going', async () => {
    const x = sqliteWorkerExecutor(file())
    try {
      await x.query('CREATE TABLE t (k TEXT PRIMARY KEY)', [])
      const err = await x.bulk('INSERT INTO t (k) VALUES (?)', [['a'], ['a']]).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(SinkWriteError)
      expect((err as SinkWriteError).message).toMatch(
        /sqlite: UNIQUE constraint failed: t.k \(SQLITE_CONSTRAINT/,
      )
      expect((err as SinkWriteError).retriable).toBe(false)
      expect(await x.query('SELECT count(*) AS n FROM t', [])).toEqual([{ n: 0 }])
      await x.bulk('INSERT INTO t (k) VALUES (?)', [['b']])
      expect(await x.query('SELECT k FROM t', [])).toEqual([{ k: 'b' }])
    } finally {
      await x.close()
    }
  })

  it('refuses requests once closed, instead of waiting for ever', async () => {
    const x = sqliteWorkerExecutor(file())
    await x.query('SELECT 1', [])
    await x.close()
    await expect(x.query('SELECT 1', [])).rejects.toThrow(/sqlite thread: closed/)
  })

  it('reports a database it cannot open as retriable, like an unreachable one, and opens it once it can', async () => {
    const notADir = file()
    writeFileSync(notADir, 'a file, not a directory')
    const x = sqliteWorkerExecutor(path.join(notADir, 'x.db'))
    try {
      const err = await x.query('SELECT 1', []).catch((e: unknown) => e)
      expect((err as Error).message).toMatch(/sqlite thread: EEXIST: file already exists, mkdir/)
      expect((err as SinkWriteError).retriable).toBe(true)
      // The cause goes away: the next request starts a new thread, which opens the file.
      rmSync(notADir)
      expect(await x.query('SELECT 1 AS one', [])).toEqual([{ one: 1 }])
    } finally {
      await x.close()
    }
  })
})

describe('consumers > sinks > sqlite writer loop: bulks that arrive together commit together', () => {
  const setup = () => {
    const f = path.join(mkdtempSync(path.join(tmpdir(), 'fs-sqlite-loop-')), 'x.db')
    const db = openSqlite(f)
    db.exec('CREATE TABLE t (k TEXT PRIMARY KEY)')
    const replies: SqliteReply[] = []
    let wake = () => {}
    const send = sqliteRequestLoop(sqliteExecutor(db), (r) => {
      replies.push(r)
      wake()
    })
    const answered = (n: number) =>
      new Promise<void>((resolve) => {
        wake = () => replies.length >= n && resolve()
        wake()
      })
    const bulk = (id: number, ...keys: string[]) =>
      send({ id, kind: 'bulk', text: 'INSERT INTO t (k) VALUES (?)', params: keys.map((k) => [k]) })
    const keys = () => (db.prepare('SELECT k FROM t ORDER BY k').pluck().all() as string[]).join(',')
    return { db, replies, send, answered, bulk, keys }
  }

  it('answers each bulk, in order, once the one transaction they share is committed', async () => {
    const { db, replies, send, answered, bulk, keys } = setup()
    bulk(1, 'a', 'b')
    bulk(2, 'c')
    bulk(3, 'd', 'e')
    send({ id: 4, kind: 'query', text: 'SELECT count(*) AS n FROM t', params: [] })
    bulk(5, 'f')
    await answered(5)
    expect(replies).toEqual([
      { id: 1, rows: [], together: 3 },
      { id: 2, rows: [], together: 3 },
      { id: 3, rows: [], together: 3 },
      { id: 4, rows: [{ n: 5 }] },
      { id: 5, rows: [], together: 1 },
    ])
    // Bulks sent after those were answered start a new transaction.
    bulk(6, 'g')
    bulk(7, 'h')
    await answered(7)
    expect(replies.slice(5)).toEqual([
      { id: 6, rows: [], together: 2 },
      { id: 7, rows: [], together: 2 },
    ])
    expect(keys()).toBe('a,b,c,d,e,f,g,h')
    db.close()
  })

  it('runs each alone when their transaction fails: only the failing one hears of it', async () => {
    const { db, replies, answered, bulk, keys } = setup()
    bulk(1, 'a')
    bulk(2, 'b', 'b') // a duplicate key: this bulk fails, all of it
    bulk(3, 'c')
    await answered(3)
    expect(replies).toEqual([
      { id: 1, rows: [], together: 1 },
      { id: 2, error: { message: expect.stringMatching(/UNIQUE constraint failed: t.k/), retriable: false } },
      { id: 3, rows: [], together: 1 },
    ])
    expect(keys()).toBe('a,c')
    db.close()
  })
})

describe('consumers > sinks > sqlite: telemetry still in Avro, read on the writer thread', () => {
  const file = () => path.join(mkdtempSync(path.join(tmpdir(), 'fs-sqlite-avro-')), 'x.db')
  const readings: Telemetry[] = [
    {
      deviceId: 'dev-ü',
      tenant: 'acme',
      ts: 1_790_000_000_000,
      receivedAt: 1_790_000_000_005,
      seq: 7,
      metrics: { temp: 21.5, on: true, mode: 'a "quoted" \\ line\n', big: 1e21, neg: -0 },
      meta: { fw: '1.2', site: 'Zürich 😀' },
      source: 'mqtt',
    },
    {
      deviceId: 'dev-ü',
      tenant: null,
      ts: 1_789_999_999_000,
      receivedAt: 1_790_000_000_006,
      seq: null,
      metrics: { temp: NaN },
      meta: {},
      source: 'http',
    },
    {
      deviceId: 'dev-2',
      tenant: null,
      ts: 1_790_000_000_100,
      receivedAt: 1_790_000_000_101,
      seq: 0,
      metrics: {},
      meta: {},
      source: 'bridge',
    },
  ]
  const dump = (f: string) => {
    const db = openSqlite(f)
    const out = {
      telemetry: db.prepare('SELECT * FROM telemetry ORDER BY device_id, ts, seq').all(),
      devices: db.prepare('SELECT * FROM devices ORDER BY device_id').all(),
    }
    db.close()
    return out
  }

  it('stores what the general path stores (rows, JSON text, last-seen), all of a batch or none', async () => {
    const codec = await createTelemetryCodec(new LocalSchemaRegistry())
    await generalAndFast(file, async (general, fast, { general: fa, fast: fb }) => {
      await general.writeTelemetry(readings)
      expect(fast.writeTelemetryAvro).toBeDefined()
      expect(await fast.writeTelemetryAvro!(readings.map((r) => codec.encode(r)))).toBe(true)
      const stored = dump(fb)
      expect(stored).toEqual(dump(fa))
      expect(stored.telemetry).toHaveLength(3)
      expect(stored.devices).toEqual([
        expect.objectContaining({ device_id: 'dev-2', last_seen: 1_790_000_000_100 }),
        expect.objectContaining({ device_id: 'dev-ü', last_seen: 1_790_000_000_000 }),
      ])
      // A batch with a reading the transcoder leaves to the general path: false, and none of it stored.
      const digitKey = codec.encode({ ...readings[2]!, deviceId: 'dev-3', meta: { '1': 'x' } })
      const more = codec.encode({ ...readings[2]!, deviceId: 'dev-4' })
      expect(await fast.writeTelemetryAvro!([more, digitKey])).toBe(false)
      expect(dump(fb)).toEqual(stored)
    })
  })
})

describe('consumers > sinks > sqlite: rollups still in Avro, read on the writer thread', () => {
  const file = () => path.join(mkdtempSync(path.join(tmpdir(), 'fs-sqlite-rollups-')), 'x.db')
  const rollup = (
    deviceId: string,
    metric: string,
    windowStart: number,
    over: Partial<Rollup> = {},
  ): Rollup => ({
    deviceId,
    metric,
    windowStart,
    windowEnd: windowStart + 60_000,
    count: 3,
    min: 1.25,
    max: 9.5,
    sum: 12,
    avg: 4,
    first: 1.25,
    last: 9.5,
    kind: 'final',
    ...over,
  })
  const dump = (f: string) => {
    const db = openSqlite(f)
    const rows = db.prepare('SELECT * FROM rollups ORDER BY device_id, metric, window_ms, window_start').all()
    db.close()
    return rows
  }

  it('applies what writeRollups applies (last record per key, retractions deleted), all of a batch or none', async () => {
    const codec = await AvroCodec.bundled<Rollup>(new LocalSchemaRegistry(), 'rollup.avsc')
    const t0 = 1_790_000_040_000
    const first: Rollup[] = [
      rollup('dev-ü', 'temp', t0),
      rollup('dev-ü', 'temp', t0 + 60_000, { count: 1, min: -0.5, max: -0.5, sum: -0.5, avg: -0.5 }),
      rollup('dev-2', 'hum', t0, { kind: 'update' }),
      rollup('dev-2', 'hum', t0 - 60_000),
    ]
    const second: Rollup[] = [
      // A correction, then another of the same key in the same batch: only the last counts.
      rollup('dev-ü', 'temp', t0, { count: 4, kind: 'update' }),
      rollup('dev-ü', 'temp', t0, { count: 5, max: 11, kind: 'update' }),
      rollup('dev-2', 'hum', t0 - 60_000, { kind: 'retract' }),
      // Corrected, then retracted in the same batch: deleted (the retraction is the last record).
      rollup('dev-2', 'hum', t0, { count: 9, kind: 'update' }),
      rollup('dev-2', 'hum', t0, { kind: 'retract' }),
      // An hour's window of the same device, metric and start: a key of its own.
      rollup('dev-ü', 'temp', t0, { windowEnd: t0 + 3_600_000, count: 40 }),
    ]
    await generalAndFast(file, async (general, fast, { general: fa, fast: fb }) => {
      expect(fast.writeRollupsAvro).toBeDefined()
      for (const batch of [first, second]) {
        await general.writeRollups(batch)
        expect(await fast.writeRollupsAvro!(batch.map((r) => codec.encode(r)))).toBe(true)
      }
      const stored = dump(fb)
      expect(stored).toEqual(dump(fa))
      expect(stored).toEqual([
        expect.objectContaining({
          device_id: 'dev-ü',
          window_ms: 60_000,
          window_start: t0,
          count: 5,
          max: 11,
        }),
        expect.objectContaining({
          device_id: 'dev-ü',
          window_ms: 60_000,
          window_start: t0 + 60_000,
          min: -0.5,
        }),
        expect.objectContaining({ device_id: 'dev-ü', window_ms: 3_600_000, window_start: t0, count: 40 }),
      ])
      // A batch with a payload that does not decode: false, and none of it stored.
      const good = codec.encode(rollup('dev-3', 'temp', t0))
      const truncated = codec.encode(rollup('dev-4', 'temp', t0)).subarray(0, 12)
      expect(await fast.writeRollupsAvro!([good, truncated])).toBe(false)
      expect(dump(fb)).toEqual(stored)
    })
  })
})
