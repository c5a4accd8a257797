import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import avro from 'avsc'
import Database from 'better-sqlite3'
import { loadBundledSchema } from '../../core/envelope/registry'
import { WIRE_HEADER_LENGTH } from '../../core/envelope/wire'
import type { Rollup } from '../../schemas/types.generated'
import { SinkWriteError, type Sink } from './sink'
import { bulkParams, sqliteDialect } from './sql/dialect'
import { sqlSink, type SqlExecutor } from './sql/sql-sink'
import { lastPerKey, rollupKey, ROLLUPS } from './sql/tables'
import { telemetryRows, TranscodeError } from './sql/telemetry-copy'

/** SQLite result codes worth retrying: the database is busy or locked by another connection. */
const RETRIABLE = new Set(['SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_IOERR'])

const sqliteError = (err: unknown) => {
  const code = (err as { code?: string }).code ?? ''
  return new SinkWriteError(
    `sqlite: ${(err as Error).message}${code ? ` (${code})` : ''}`,
    [...RETRIABLE].some((c) => code.startsWith(c)),
    err,
  )
}

/** Opens (creating) a SQLite database file in WAL mode, for the embedded store. */
export function openSqlite(file: string): Database.Database {
  if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true })
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  // FULL: each committed batch is on disk before the sink commits its offsets, so not even a power
  // loss can drop rows whose offsets are committed (NORMAL would survive only a process crash).
  db.pragma('synchronous = FULL')
  db.pragma('busy_timeout = 5000')
  return db
}

/**
 * A better-sqlite3 database as a SQL executor: statements are prepared once and cached; a bulk
 * statement runs once per parameter row inside one transaction (all rows or none). The calls
 * are synchronous — SQLite is in-process — and quick for the batch sizes the sinks write.
 */
export function sqliteExecutor(db: Database.Database): SqliteExecutor {
  const cache = new Map<string, Database.Statement>()
  const prepare = (text: string) => {
    let st = cache.get(text)
    if (!st) cache.set(text, (st = db.prepare(text)))
    return st
  }
  const many = db.transaction((st: Database.Statement, rows: unknown[][]) => {
    for (const r of rows) st.run(r)
  })
  const together = db.transaction((bulks: { text: string; rows: unknown[][] }[]) => {
    for (const b of bulks) {
      const st = prepare(b.text)
      for (const r of b.rows) st.run(r)
    }
  })
  const runTogether = (bulks: Bulk[]) => {
    try {
      together(bulks)
    } catch (err) {
      throw sqliteError(err)
    }
  }
  return {
    async query(text, params) {
      try {
        const st = prepare(text)
        // Numbered parameters (?1, ?2…) bind from an object keyed by number in better-sqlite3.
        const args = /\?\d/.test(text) ? Object.fromEntries(params.map((v, i) => [i + 1, v])) : params
        return st.reader ? (st.all(args) as Record<string, unknown>[]) : (st.run(args), [])
      } catch (err) {
        throw sqliteError(err)
      }
    },
    async bulk(text, rows) {
      try {
        many(prepare(text), rows as unknown[][])
      } catch (err) {
        throw sqliteError(err)
      }
    },
    bulkTogether: runTogether,
    telemetryAvro: async (insert, lastSeen, values) => runTogether(telemetryBulks(insert, lastSeen, values)),
    rollupsAvro: async (upsert, remove, values) => runTogether(rollupBulks(upsert, remove, values)),
    close: async () => void db.close(),
  }
}

/** One bulk statement and its rows. */
interface Bulk {
  text: string
  rows: unknown[][]
}

/**
 * Readings still in Avro as the bulks that write them: their rows (telemetryRows) with
 * `insert`, their devices' last-seen (sorted by device, as the general path writes them) with
 * `lastSeen`. A payload the transcoder cannot take is a SinkWriteError, not retriable: the sink
 * then writes the batch through its general path.
 */
function telemetryBulks(insert: string, lastSeen: string, values: Buffer[]): Bulk[] {
  let t: ReturnType<typeof telemetryRows>
  try {
    t = telemetryRows(values)
  } catch (err) {
    if (err instanceof TranscodeError || err instanceof RangeError)
      throw new SinkWriteError(`sqlite: cannot transcode a reading: ${err.message}`, false, err)
    throw err
  }
  t.lastSeen.sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0))
  return [
    { text: insert, rows: t.rows },
    { text: lastSeen, rows: t.lastSeen.map((s) => [s.deviceId, s.tenant, s.ts]) },
  ]
}

/** The bundled rollup schema, which the sink's rollup fast path is given (runtime.ts checks the id). */
let rollupType: avro.Type | undefined

/**
 * Rollups still in Avro as the bulks that apply them, as sqlSink's writeRollups does: the last
 * record of each key, retractions deleted with `remove`, the rest upserted with `upsert`. A
 * payload that does not decode is a SinkWriteError, not retriable: the sink then takes its
 * general path, which dead-letters it with avsc's own error.
 */
function rollupBulks(upsert: string, remove: string, values: Buffer[]): Bulk[] {
  rollupType ??= avro.Type.forSchema(loadBundledSchema('rollup.avsc'))
  const rs: Rollup[] = []
  for (const v of values) {
    try {
      rs.push(rollupType.fromBuffer(v.subarray(WIRE_HEADER_LENGTH)) as Rollup)
    } catch (err) {
      throw new SinkWriteError(`sqlite: cannot decode a rollup: ${(err as Error).message}`, false, err)
    }
  }
  const last = lastPerKey(rs, rollupKey)
  const retract = last.filter((r) => r.kind === 'retract')
  const keep = last.filter((r) => r.kind !== 'retract')
  return [
    { text: remove, rows: bulkParams(sqliteDialect, ROLLUPS, retract, ROLLUPS.key) as unknown[][] },
    { text: upsert, rows: bulkParams(sqliteDialect, ROLLUPS, keep) as unknown[][] },
  ].filter((b) => b.rows.length > 0)
}

/** The SQL executor of one SQLite connection, with bulks of several callers in one transaction. */
export interface SqliteExecutor extends SqlExecutor {
  /** Runs several bulks in one transaction (one commit, one fsync): all of them or none. */
  bulkTogether(bulks: Bulk[]): void
  telemetryAvro(insert: string, lastSeen: string, values: Buffer[]): Promise<void>
  rollupsAvro(upsert: string, remove: string, values: Buffer[]): Promise<void>
}

/** A request to the SQLite writer thread (sqlite-thread.ts). `telemetry`, `rollups`: records
 * in Avro, each value `u32 length + bytes` in `packed` (one buffer, transferred), and the two
 * statements that write them (telemetry: insert, last-seen; rollups: upsert, remove). */
export type SqliteRequest =
  | { id: number; kind: 'bulk' | 'query'; text: string; params: unknown[] }
  | { id: number; kind: 'telemetry' | 'rollups'; statements: [string, string]; packed: ArrayBuffer }
  | { id: number; kind: 'close' }

/** Values as one transferable buffer, each `u32 length + bytes`. */
function packValues(values: Buffer[]): ArrayBuffer {
  let size = 0
  for (const v of values) size += 4 + v.length
  const buf = Buffer.from(new ArrayBuffer(size))
  let at = 0
  for (const v of values) {
    at = buf.writeUInt32LE(v.length, at)
    at += v.copy(buf, at)
  }
  return buf.buffer as ArrayBuffer
}

function unpackValues(packed: ArrayBuffer): Buffer[] {
  const buf = Buffer.from(packed)
  const out: Buffer[] = []
  for (let at = 0; at < buf.length;) {
    const n = buf.readUInt32LE(at)
    out.push(buf.subarray(at + 4, at + 4 + n))
    at += 4 + n
  }
  return out
}

/** The writer thread's answer to request `id`: its rows, or why it failed. */
export interface SqliteReply {
  id: number
  rows?: Record<string, unknown>[]
  error?: { message: string; retriable: boolean }
  /** A bulk: how many bulks were committed in its transaction (1: alone). */
  together?: number
}

/** Structured clone turns a Buffer into a plain Uint8Array, which better-sqlite3 does not bind. */
const asBuffers = (xs: unknown[]): unknown[] =>
  xs.map((v) =>
    v instanceof Uint8Array && !Buffer.isBuffer(v)
      ? Buffer.from(v.buffer, v.byteOffset, v.byteLength)
      : Array.isArray(v)
        ? asBuffers(v)
        : v,
  )

/**
 * The writer thread's loop: requests answered in the order they come, and the bulks that
 * arrived together (the sink writes each partition's batch as one, up to `sinks.concurrency` at
 * once) committed in one transaction. With `synchronous = FULL` every commit is an fsync: at
 * 15,000 readings/s the sink's batches of ~50 rows made a few hundred a second, on the disk the
 * embedded log syncs too, and a slow sync held every batch behind it. The bulks waiting while a
 * commit runs go together in the next. If a transaction of several fails, each is run again
 * alone, so that each caller hears of its own outcome only.
 */
export function sqliteRequestLoop(
  exec: SqliteExecutor,
  reply: (r: SqliteReply) => void,
): (m: SqliteRequest) => void {
  /** A request as the loop runs it: a query or close alone, or bulks (one request's) to commit. */
  type Work = { m: SqliteRequest; bulks?: Bulk[] }
  const queue: SqliteRequest[] = []
  let scheduled = false
  const fail = (id: number, err: unknown) => {
    const e = err as { message: string; retriable?: boolean }
    reply({ id, error: { message: e.message, retriable: e.retriable === true } })
  }
  /** A request's work (with its bulks when it writes); undefined for one it cannot take, answered here. */
  const prepare = (m: SqliteRequest): Work | undefined => {
    try {
      if (m.kind === 'bulk') return { m, bulks: [{ text: m.text, rows: asBuffers(m.params) as unknown[][] }] }
      if (m.kind === 'telemetry' || m.kind === 'rollups')
        return {
          m,
          bulks: (m.kind === 'telemetry' ? telemetryBulks : rollupBulks)(
            ...m.statements,
            unpackValues(m.packed),
          ),
        }
      return { m }
    } catch (err) {
      fail(m.id, err)
      return undefined
    }
  }
  const alone = async ({ m, bulks }: Work) => {
    try {
      if (bulks) {
        exec.bulkTogether(bulks)
        reply({ id: m.id, rows: [], together: 1 })
      } else if (m.kind === 'query') reply({ id: m.id, rows: await exec.query(m.text, asBuffers(m.params)) })
      else {
        await exec.close()
        reply({ id: m.id, rows: [] })
      }
    } catch (err) {
      fail(m.id, err)
    }
  }
  const drain = async () => {
    const batch = queue.splice(0).flatMap((m) => prepare(m) ?? [])
    for (let i = 0; i < batch.length;) {
      let j = i
      while (j < batch.length && batch[j]!.bulks) j++
      const writes = batch.slice(i, j)
      if (writes.length > 1) {
        let done = false
        try {
          exec.bulkTogether(writes.flatMap((w) => w.bulks!))
          done = true
        } catch {
          // one of them failed: each alone below, so that each hears of its own outcome
        }
        if (done) for (const w of writes) reply({ id: w.m.id, rows: [], together: writes.length })
        else for (const w of writes) await alone(w)
        i = j
        continue
      }
      await alone(batch[i]!)
      i++
    }
    scheduled = false
    if (queue.length > 0) schedule()
  }
  const schedule = () => {
    scheduled = true
    // After the messages already delivered: those that came meanwhile join this transaction.
    setImmediate(() => void drain())
  }
  return (m) => {
    queue.push(m)
    if (!scheduled) schedule()
  }
}

/**
 * SQLite on a thread of its own, as a SQL executor. better-sqlite3 is synchronous, so on the
 * main thread every batch's inserts and its commit (an fsync, with synchronous = FULL) stopped
 * the rest of `fleetstream up` (bridge, jobs) while they ran: ~10% of its time in the bench's
 * profile. On the writer thread they overlap with the pipeline, on the second core. Callers
 * await each request as before: a batch is on disk before the sink commits its offsets.
 */
export function sqliteWorkerExecutor(file: string): SqlExecutor {
  // A development checkout runs the TypeScript sources: the thread loads them through tsx too.
  const dev = __filename.endsWith('.ts')
  const pending = new Map<
    number,
    { resolve: (rows: Record<string, unknown>[]) => void; reject: (e: Error) => void }
  >()
  let worker: Worker | undefined
  let closed = false
  /** Starts the thread. One that stops (it could not open the file, it crashed) fails what it
   * had as retriable, like an unreachable database, and the next request starts a new one. */
  const start = (): Worker => {
    const w = new Worker(path.join(__dirname, `sqlite-thread${dev ? '.ts' : '.js'}`), {
      workerData: { file },
      execArgv: dev ? ['--require', require.resolve('tsx/cjs')] : [],
    })
    const stopped = (err: Error) => {
      if (worker !== w) return
      worker = undefined
      for (const p of pending.values())
        p.reject(new SinkWriteError(`sqlite thread: ${err.message}`, true, err))
      pending.clear()
    }
    w.on('message', (m: SqliteReply) => {
      const p = pending.get(m.id)
      pending.delete(m.id)
      if (m.error) p?.reject(new SinkWriteError(m.error.message, m.error.retriable))
      else p?.resolve(m.rows ?? [])
    })
    w.on('error', stopped)
    w.on('exit', (code) => stopped(new Error(`stopped (exit code ${code})`)))
    return w
  }
  let nextId = 0
  type Unsent<R> = R extends SqliteRequest ? Omit<R, 'id'> : never
  const call = (req: Unsent<SqliteRequest>, transfer: ArrayBuffer[] = []) =>
    new Promise<Record<string, unknown>[]>((resolve, reject) => {
      if (closed) return reject(new SinkWriteError('sqlite thread: closed', false))
      const id = ++nextId
      pending.set(id, { resolve, reject })
      ;(worker ??= start()).postMessage({ ...req, id }, transfer)
    })
  const avroCall = async (kind: 'telemetry' | 'rollups', statements: [string, string], values: Buffer[]) => {
    const packed = packValues(values)
    await call({ kind, statements, packed }, [packed])
  }
  return {
    query: (text, params) => call({ kind: 'query', text, params }),
    bulk: async (text, params) => void (await call({ kind: 'bulk', text, params })),
    // Readings and rollups cross as their Avro bytes in one transferred buffer, and are read
    // there: decoded here, and their rows copied to the thread value by value (structured clone),
    // the 40,000 rollups of 10,000 devices' minute took ~150 ms of the sink's thread, which
    // enriches readings too (packed: ~4 ms).
    telemetryAvro: (insert, lastSeen, values) => avroCall('telemetry', [insert, lastSeen], values),
    rollupsAvro: (upsert, remove, values) => avroCall('rollups', [upsert, remove], values),
    close: async () => {
      const w = worker
      if (w) await call({ kind: 'close' }).catch(() => undefined)
      closed = true
      worker = undefined
      await w?.terminate()
    },
  }
}

/** The embedded store's sink: the SQL model in SQLite (`sinks.sqlite.file`), written on a thread
 * of its own. */
export function sqliteSink(o: { file: string }): Sink {
  return sqlSink('sqlite', sqliteDialect, sqliteWorkerExecutor(o.file))
}
