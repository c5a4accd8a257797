import { readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { ApiKeyStore, allows } from './keys'
import { parseInterval, parseTime } from './server'
import { aggregate } from './store'
import { tempDir } from '../test/tmp'

describe('api > keys, parameters, aggregation', () => {
  it('stores keys only as hashes (file mode 0600); verifies, scopes and revokes them', () => {
    const file = path.join(tempDir('fs-keys-'), 'keys.json')
    const keys = new ApiKeyStore(file)
    const { id, key } = keys.add('ci', ['read', 'write:rules'])
    expect(key).toMatch(/^fsk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/)
    expect(readFileSync(file, 'utf8')).not.toContain(key.slice(22))
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(keys.verify(key)).toEqual({ id, name: 'ci', scopes: ['read', 'write:rules'] })
    expect(keys.verify(key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A'))).toBeUndefined()
    expect(allows(['read'], 'write:rules')).toBe(false)
    expect(allows(['admin'], 'write:alerts')).toBe(true)
    expect(() => keys.add('x', ['root' as never])).toThrow(/unknown scope/)
    expect(keys.revoke(id)).toBe(true)
    expect(keys.verify(key)).toBeUndefined()
    expect(keys.list()[0]).not.toHaveProperty('sha256')
  })

  it('parses intervals and times strictly', () => {
    expect(parseInterval('1m')).toBe(60_000)
    expect(parseInterval('250')).toBe(250)
    expect(parseInterval('0s')).toBeUndefined()
    expect(parseInterval('1w')).toBeUndefined()
    expect(parseTime('2026-11-20T10:00:00Z', 'from')).toBe(Date.UTC(2026, 10, 20, 10))
    expect(parseTime('1700000000000', 'from')).toBe(1_700_000_000_000)
    expect(() => parseTime("1' OR 1=1", 'from')).toThrow(/epoch ms or ISO 8601/)
    expect(() => parseTime('2026-13-45T99:99:99Z', 'to')).toThrow(/epoch ms or ISO 8601/)
  })

  it('aggregates per epoch-aligned interval like the SQL stores', () => {
    const pts = [
      { ts: 59_000, v: 1 },
      { ts: 60_000, v: 4 },
      { ts: 61_000, v: 2 },
      { ts: 125_000, v: 7 },
    ]
    expect(aggregate(pts, 60_000, 'avg')).toEqual([
      { t: 0, v: 1, n: 1 },
      { t: 60_000, v: 3, n: 2 },
      { t: 120_000, v: 7, n: 1 },
    ])
    expect(aggregate(pts, 60_000, 'last').map((p) => p.v)).toEqual([1, 2, 7])
    expect(aggregate(pts, 60_000, 'max').map((p) => p.v)).toEqual([1, 4, 7])
  })
})
