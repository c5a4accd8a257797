import { parentPort, workerData } from 'node:worker_threads'
import { openSqlite, sqliteExecutor, type SqliteRequest, type SqliteReply } from './sqlite'

/**
 * The embedded store's writer thread (see sqliteWorkerExecutor in sqlite.ts): one SQLite
 * connection, requests answered in the order they come.
 */
const port = parentPort!
const exec = sqliteExecutor(openSqlite((workerData as { file: string }).file))

/** Structured clone turns a Buffer into a plain Uint8Array, which better-sqlite3 does not bind. */
const asBuffers = (xs: unknown[]): unknown[] =>
  xs.map((v) =>
    v instanceof Uint8Array && !Buffer.isBuffer(v)
      ? Buffer.from(v.buffer, v.byteOffset, v.byteLength)
      : Array.isArray(v)
        ? asBuffers(v)
        : v,
  )

port.on('message', (m: SqliteRequest) => {
  const run =
    m.kind === 'bulk'
      ? exec.bulk(m.text, asBuffers(m.params)).then(() => [])
      : m.kind === 'query'
        ? exec.query(m.text, asBuffers(m.params) as unknown[])
        : exec.close().then(() => [])
  run.then(
    (rows) => port.postMessage({ id: m.id, rows } satisfies SqliteReply),
    (err: unknown) => {
      const e = err as { message: string; retriable?: boolean }
      port.postMessage({
        id: m.id,
        error: { message: e.message, retriable: e.retriable === true },
      } satisfies SqliteReply)
    },
  )
})
