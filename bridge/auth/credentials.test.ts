import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { FileDeviceStore, hashToken, tokenMatches } from './credentials'

describe('bridge > auth > credentials (file store)', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'fs-devices-'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('hashes with scrypt and checks in constant time', async () => {
    const h = await hashToken('secret')
    expect(h).toMatch(/^scrypt\$16384\$8\$1\$[\w-]+\$[\w-]+$/)
    expect(await tokenMatches('secret', h)).toBe(true)
    expect(await tokenMatches('Secret', h)).toBe(false)
    expect(await tokenMatches('secret', 'md5$x')).toBe(false)
  })

  it('adds a device with a token shown once, stores only the hash, and verifies it', async () => {
    const file = path.join(dir, 'devices.json')
    const store = new FileDeviceStore(file)
    const { token } = await store.add('sensor-1', { tenant: 'acme' })
    const text = readFileSync(file, 'utf8')
    expect(text).not.toContain(token)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(await store.verify('sensor-1', token)).toEqual({ deviceId: 'sensor-1', tenant: 'acme' })
    expect(await store.verify('sensor-1', `${token}x`)).toBeUndefined()
    expect(await store.verify('sensor-2', token)).toBeUndefined()
  })

  it('revokes: the token stops working at once in this process', async () => {
    const store = new FileDeviceStore(path.join(dir, 'devices.json'))
    const { token } = await store.add('d')
    expect(await store.verify('d', token)).toBeDefined()
    expect(await store.revoke('d')).toBe(true)
    expect(await store.revoke('d')).toBe(false)
    expect(await store.verify('d', token)).toBeUndefined()
    expect((await store.list())[0]).toMatchObject({ deviceId: 'd', revokedAt: expect.any(String) })
  })

  it('sees devices added by another process (file changed on disk)', async () => {
    const file = path.join(dir, 'devices.json')
    const reader = new FileDeviceStore(file)
    expect(await reader.list()).toEqual([])
    const { token } = await new FileDeviceStore(file).add('late-device')
    expect(await reader.verify('late-device', token)).toEqual({ deviceId: 'late-device', tenant: null })
  })

  it.each(['a/b', '+', '#', '', 'x'.repeat(129), '$SYS'])('refuses the device id %j', async (id) => {
    await expect(new FileDeviceStore(path.join(dir, 'devices.json')).add(id)).rejects.toThrow(/invalid/)
  })
})

describe('bridge > auth > credentials (file store, concurrency)', () => {
  it('keeps every device when many are added at once', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fs-devices-'))
    try {
      const store = new FileDeviceStore(path.join(dir, 'devices.json'))
      const ids = Array.from({ length: 12 }, (_, i) => `c${i}`)
      await Promise.all(ids.map((id) => store.add(id)))
      expect(
        (await new FileDeviceStore(path.join(dir, 'devices.json')).list()).map((d) => d.deviceId).sort(),
      ).toEqual(ids.sort())
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
