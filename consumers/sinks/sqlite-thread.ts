import { parentPort, workerData } from 'node:worker_threads'
import { openSqlite, sqliteExecutor, sqliteRequestLoop, type SqliteReply } from './sqlite'

/**
 * The embedded store's writer thread (see sqliteWorkerExecutor in sqlite.ts): one SQLite
 * connection, requests answered in the order they come, bulks that arrive together committed
 * together (sqliteRequestLoop).
 */
const port = parentPort!
const exec = sqliteExecutor(openSqlite((workerData as { file: string }).file))
port.on(
  'message',
  sqliteRequestLoop(exec, (r: SqliteReply) => port.postMessage(r)),
)
