import { Pool } from 'pg'
import { serverEnv } from '../../test/servers'
import { PostgresDeviceStore } from './credentials'

describe('bridge > auth > credentials in PostgreSQL [postgres]', () => {
  let store: PostgresDeviceStore
  let pool: Pool
  const id = `pg-dev-${process.pid}-${Date.now()}`

  beforeAll(() => {
    pool = new Pool({ connectionString: serverEnv().FS_POSTGRES_URL, max: 2 })
    store = new PostgresDeviceStore(pool, 0)
  })
  afterAll(async () => {
    await pool.query('DELETE FROM fs_device_credentials WHERE device_id = $1', [id]).catch(() => undefined)
    await store.close()
  })

  it('creates its table, stores only a hash, verifies, lists and revokes', async () => {
    const { token } = await store.add(id, { tenant: 't1' })
    const raw = await pool.query('SELECT token_hash FROM fs_device_credentials WHERE device_id = $1', [id])
    expect(raw.rows[0].token_hash).toMatch(/^sha256\$/)
    expect(raw.rows[0].token_hash).not.toContain(token)
    expect(await store.verify(id, token)).toEqual({ deviceId: id, tenant: 't1' })
    expect(await store.verify(id, 'wrong')).toBeUndefined()
    expect((await store.list()).find((d) => d.deviceId === id)).toMatchObject({
      tenant: 't1',
      revokedAt: null,
    })
    expect(await store.revoke(id)).toBe(true)
    expect(await store.verify(id, token)).toBeUndefined()
  })

  it('a new token replaces the old one', async () => {
    const first = await store.add(`${id}-r`)
    const second = await store.add(`${id}-r`)
    expect(await store.verify(`${id}-r`, first.token)).toBeUndefined()
    expect(await store.verify(`${id}-r`, second.token)).toBeDefined()
    await pool.query('DELETE FROM fs_device_credentials WHERE device_id = $1', [`${id}-r`])
  })

  it("treats a SQL injection attempt as a device id that doesn't exist", async () => {
    expect(await store.verify("x' OR '1'='1", 'anything')).toBeUndefined()
  })
})
