import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { SinkWriteError } from './sink'
import { openSqlite, sqliteWorkerExecutor } from './sqlite'

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
