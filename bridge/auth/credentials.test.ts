import { readFileSync, rmSync, statSync } from 'node:fs'
import path from 'node:path'
import { FileDeviceStore, VerifyCache, hashToken, tokenMatches } from './credentials'
import { JsonMapFile } from '../../core/files/json-map-file'
import { tempDir } from '../../test/tmp'

describe('bridge > auth > credentials (file store)', () => {
  let dir: string
  beforeEach(() => {
    dir = tempDir('fs-devices-')
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('hashes with a salted HMAC-SHA-256 by default, or scrypt, and checks either kind', async () => {
    const h = await hashToken('secret')
    expect(h).toMatch(/^sha256\$[\w-]{22}\$[\w-]{43}$/)
    expect(await hashToken('secret')).not.toBe(h) // salted
    const s = await hashToken('secret', { kind: 'scrypt', N: 1024 })
    expect(s).toMatch(/^scrypt\$1024\$8\$1\$[\w-]+\$[\w-]+$/)
    expect(await hashToken('secret', { kind: 'scrypt' })).toMatch(/^scrypt\$16384\$/)
    for (const stored of [h, s]) {
      expect(await tokenMatches('secret', stored)).toBe(true)
      expect(await tokenMatches('Secret', stored)).toBe(false)
      // One character of the stored hash changed (appending one instead would only add a
      // byte that scrypt, asked for a longer key, matches once in 256 tries).
      const at = stored.length - 5
      const tampered = stored.slice(0, at) + (stored[at] === 'A' ? 'B' : 'A') + stored.slice(at + 1)
      expect(await tokenMatches('secret', tampered)).toBe(false)
    }
    for (const bad of ['md5$x', 'sha256$', 'sha256$$', `${h}$x`, 'scrypt$1024$8$1$', ''])
      expect(await tokenMatches('secret', bad)).toBe(false)
  })

  it('stores new tokens as the configured kind; tokens stored as the other kind keep verifying', async () => {
    const file = path.join(dir, 'devices.json')
    const old = await new FileDeviceStore(file, 0, { kind: 'scrypt', N: 1024 }).add('old')
    const store = new FileDeviceStore(file, 0)
    const fresh = await store.add('new')
    const hashes = JSON.parse(readFileSync(file, 'utf8')) as { devices: Record<string, { hash: string }> }
    expect(hashes.devices.old!.hash).toMatch(/^scrypt\$1024\$/)
    expect(hashes.devices.new!.hash).toMatch(/^sha256\$/)
    expect(await store.verify('old', old.token)).toMatchObject({ deviceId: 'old' })
    expect(await store.verify('new', fresh.token)).toMatchObject({ deviceId: 'new' })
    expect(await store.verify('new', old.token)).toBeUndefined()
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
    const dir = tempDir('fs-devices-')
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

describe('bridge > auth > credentials (file store, batched writes)', () => {
  it('writes the file once for the devices added together, and they all verify from it', async () => {
    const dir = tempDir('fs-devices-')
    const save = jest.spyOn(JsonMapFile.prototype, 'save')
    try {
      const store = new FileDeviceStore(path.join(dir, 'devices.json'))
      const added = await Promise.all(Array.from({ length: 500 }, (_, i) => store.add(`b${i}`)))
      expect(save).toHaveBeenCalledTimes(1)
      const fresh = new FileDeviceStore(path.join(dir, 'devices.json'))
      for (const d of [added[0]!, added[499]!]) expect(await fresh.verify(d.deviceId, d.token)).toBeDefined()
      expect(await fresh.list()).toHaveLength(500)
    } finally {
      save.mockRestore()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('keeps what another process wrote meanwhile, and a revocation is written before it returns', async () => {
    const dir = tempDir('fs-devices-')
    try {
      const file = path.join(dir, 'devices.json')
      const [one, other] = [new FileDeviceStore(file), new FileDeviceStore(file)]
      const [a, b] = await Promise.all([one.add('a'), other.add('b')])
      expect((await new FileDeviceStore(file).list()).map((d) => d.deviceId).sort()).toEqual(['a', 'b'])
      expect(await one.revoke('a')).toBe(true)
      const fresh = new FileDeviceStore(file)
      expect(await fresh.verify('a', a.token)).toBeUndefined()
      expect(await fresh.verify('b', b.token)).toBeDefined()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('bridge > auth > verification cache', () => {
  it('shares one slow verification among concurrent logins with the same credentials', async () => {
    const cache = new VerifyCache(60_000)
    let calls = 0
    const slow = async () => {
      calls++
      await new Promise((r) => setTimeout(r, 10))
      return { deviceId: 'd', tenant: null }
    }
    const results = await Promise.all(Array.from({ length: 50 }, () => cache.verify('d', 'tok', slow)))
    expect(calls).toBe(1)
    expect(results.every((r) => r?.deviceId === 'd')).toBe(true)
    await cache.verify('d', 'tok', slow) // cached
    expect(calls).toBe(1)
    await cache.verify('d', 'other', slow) // another token: verified on its own
    expect(calls).toBe(2)
  })

  it('does not cache a failed verification, and forgets a device on delete', async () => {
    const cache = new VerifyCache(60_000)
    let ok = false
    let calls = 0
    const slow = async () => (calls++, ok ? { deviceId: 'd', tenant: null } : undefined)
    expect(await cache.verify('d', 't', slow)).toBeUndefined()
    ok = true
    expect(await cache.verify('d', 't', slow)).toBeDefined()
    cache.delete('d')
    ok = false
    expect(await cache.verify('d', 't', slow)).toBeUndefined()
    expect(calls).toBe(3)
  })
})
