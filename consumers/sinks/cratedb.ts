import { SinkWriteError, type Sink } from './sink'
import { crateDialect } from './sql/dialect'
import { sqlSink, type SqlExecutor } from './sql/sql-sink'

/**
 * CrateDB through its HTTP `_sql` endpoint. The design names `@crate.io/node-crate`, which is
 * not on the npm registry; CrateDB's own HTTP endpoint needs no client library and has the bulk
 * operation CrateDB recommends for many rows (`bulk_args`: one statement, a row of parameters
 * per record, one result per row), and its JSON carries `OBJECT(DYNAMIC)` values as they are.
 * Statements have `?` placeholders and values travel only as `args`/`bulk_args`.
 */
export function crateExecutor(o: {
  url: string
  username?: string
  password?: string
  timeoutMs?: number
}): SqlExecutor {
  const endpoint = new URL('/_sql', o.url).toString()
  const headers: Record<string, string> = { 'Content-Type': 'application/json' }
  if (o.username)
    headers.Authorization = `Basic ${Buffer.from(`${o.username}:${o.password ?? ''}`).toString('base64')}`
  const post = async (
    body: object,
  ): Promise<{
    rows?: unknown[][]
    cols?: string[]
    results?: { rowcount: number; error?: { message: string } }[]
  }> => {
    let res: Response
    try {
      res = await fetch(endpoint, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(o.timeoutMs ?? 30_000),
      })
    } catch (err) {
      throw new SinkWriteError(`cratedb: ${(err as Error).message}`, true, err)
    }
    const json = (await res.json().catch(() => ({}))) as { error?: { message?: string; code?: number } }
    if (!res.ok) {
      // 5xx and 429: the cluster is busy or a node is gone; 4xx: CrateDB refuses the statement.
      const retriable = res.status >= 500 || res.status === 429
      throw new SinkWriteError(
        `cratedb: ${json.error?.message ?? res.statusText} (HTTP ${res.status}${json.error?.code ? `, code ${json.error.code}` : ''})`,
        retriable,
      )
    }
    return json as never
  }
  return {
    async query(stmt, args) {
      const r = await post({ stmt, args })
      const cols = r.cols ?? []
      return (r.rows ?? []).map((row) => Object.fromEntries(cols.map((c, i) => [c, row[i]])))
    },
    async bulk(stmt, rows) {
      const r = await post({ stmt, bulk_args: rows })
      // A bulk answers per row: rowcount -2 is a row CrateDB refused.
      const refused = (r.results ?? []).findIndex((x) => x.rowcount === -2)
      if (refused >= 0)
        throw new SinkWriteError(
          `cratedb: row ${refused} refused${r.results![refused]!.error ? `: ${r.results![refused]!.error!.message}` : ''}`,
          false,
        )
    },
    close: async () => {},
  }
}

/** The CrateDB sink: the PostgreSQL model in CrateDB's dialect, bulk writes over `_sql`. */
export function crateSink(o: { url: string; username?: string; password?: string }): Sink {
  return sqlSink('cratedb', crateDialect, crateExecutor(o))
}
