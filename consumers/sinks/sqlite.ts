import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import Database from 'better-sqlite3'
import { SinkWriteError, type Sink } from './sink'
import { sqliteDialect } from './sql/dialect'
import { sqlSink, type SqlExecutor } from './sql/sql-sink'

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
export function sqliteExecutor(db: Database.Database): SqlExecutor {
  const cache = new Map<string, Database.Statement>()
  const prepare = (text: string) => {
    let st = cache.get(text)
    if (!st) cache.set(text, (st = db.prepare(text)))
    return st
  }
  const many = db.transaction((st: Database.Statement, rows: unknown[][]) => {
    for (const r of rows) st.run(r)
  })
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
    close: async () => void db.close(),
  }
}

/** A request to the SQLite writer thread (sqlite-thread.ts). */
export type SqliteRequest =
  { id: number; kind: 'bulk' | 'query'; text: string; params: unknown[] } | { id: number; kind: 'close' }

/** The writer thread's answer to request `id`: its rows, or why it failed. */
export interface SqliteReply {
  id: number
  rows?: Record<string, unknown>[]
  error?: { message: string; retriable: boolean }
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
  const call = (req: Omit<Extract<SqliteRequest, { kind: 'bulk' | 'query' }>, 'id'> | { kind: 'close' }) =>
    new Promise<Record<string, unknown>[]>((resolve, reject) => {
      if (closed) return reject(new SinkWriteError('sqlite thread: closed', false))
      const id = ++nextId
      pending.set(id, { resolve, reject })
      ;(worker ??= start()).postMessage({ ...req, id })
    })
  return {
    query: (text, params) => call({ kind: 'query', text, params }),
    bulk: async (text, params) => void (await call({ kind: 'bulk', text, params })),
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
