import { mkdirSync } from 'node:fs'
import path from 'node:path'
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

/** The embedded store's sink: the SQL model in SQLite (`sinks.sqlite.file`). */
export function sqliteSink(o: { file: string }): Sink {
  return sqlSink('sqlite', sqliteDialect, sqliteExecutor(openSqlite(o.file)))
}
