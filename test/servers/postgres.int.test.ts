import { Client } from 'pg'
import { serverEnv, uniqueName } from '../servers'

describe('test > servers > postgres smoke [postgres]', () => {
  let client: Client
  const table = uniqueName('smoke')

  beforeAll(async () => {
    client = new Client({ connectionString: serverEnv().FS_POSTGRES_URL })
    await client.connect()
  })

  afterAll(async () => {
    await client?.query(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined)
    await client?.end()
  })

  it('connects with a password over TCP and answers a query', async () => {
    const r = await client.query<{ version: string; user: string }>(
      'SELECT version() AS version, current_user AS user',
    )
    expect(r.rows[0]!.version).toMatch(/^PostgreSQL \d+/)
    expect(r.rows[0]!.user).toBe('fleetstream')
  })

  it('writes and reads with parameters, upserting on a key', async () => {
    await client.query(
      `CREATE TABLE ${table} (device_id text, ts bigint, seq bigint, v double precision, PRIMARY KEY (device_id, ts, seq))`,
    )
    const upsert = `INSERT INTO ${table} VALUES ($1, $2, $3, $4) ON CONFLICT (device_id, ts, seq) DO UPDATE SET v = EXCLUDED.v`
    await client.query(upsert, ['d1', 1, 0, 1.5])
    await client.query(upsert, ['d1', 1, 0, 2.5])
    await client.query(upsert, ["d1'; DROP TABLE x; --", 2, 0, 9])
    const r = await client.query(`SELECT device_id, v FROM ${table} ORDER BY ts`)
    expect(r.rows).toEqual([
      { device_id: 'd1', v: 2.5 },
      { device_id: "d1'; DROP TABLE x; --", v: 9 },
    ])
  })

  it('refuses a wrong password', async () => {
    const url = new URL(serverEnv().FS_POSTGRES_URL)
    url.password = 'wrong'
    const bad = new Client({ connectionString: url.toString() })
    await expect(bad.connect()).rejects.toThrow(/password authentication failed/)
    await bad.end().catch(() => undefined)
  })
})
