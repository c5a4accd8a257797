import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { JsonMapFile } from '../core/files/json-map-file'

/** What a key may do: `read` everything, write rules, acknowledge alerts; `admin` may do all. */
export const SCOPES = ['read', 'write:rules', 'write:alerts', 'admin'] as const
export type Scope = (typeof SCOPES)[number]

/** An API key as listed (never with its secret). */
export interface ApiKeyInfo {
  id: string
  name: string
  scopes: Scope[]
  createdAt: string
  revokedAt: string | null
}

interface Entry extends ApiKeyInfo {
  /** SHA-256 of the secret, hex. */
  sha256: string
}

const KEY = /^fsk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/

const sha256 = (s: string) => createHash('sha256').update(s).digest()

/** Whether a key with `scopes` may do what `needed` names (`admin` may do everything). */
export function allows(scopes: readonly Scope[], needed: Scope): boolean {
  return scopes.includes('admin') || scopes.includes(needed)
}

/**
 * API keys in a JSON file (mode 0600), stored as SHA-256 hashes. A key is
 * `fsk_<16 hex id>_<32 random bytes, base64url>`, shown once when made. As for device tokens
 * (`bridge/auth/credentials.ts`), a fast hash is enough: the secret is 256 random bits, so nothing can be
 * guessed from its hash, and each request is checked in microseconds. The file is read again
 * when it changes, so `fleetstream apikeys add|revoke` takes effect on a running API.
 */
export class ApiKeyStore {
  private readonly store: JsonMapFile<Entry>

  constructor(file: string) {
    this.store = new JsonMapFile<Entry>(file, 'keys')
  }

  /** Makes a key; the returned `key` is the only time its secret is seen. */
  add(name: string, scopes: Scope[]): { id: string; key: string; scopes: Scope[] } {
    if (scopes.length === 0) throw new Error('a key needs at least one scope')
    for (const s of scopes)
      if (!SCOPES.includes(s)) throw new Error(`unknown scope "${s}"; known: ${SCOPES.join(', ')}`)
    const id = randomBytes(8).toString('hex')
    const secret = randomBytes(32).toString('base64url')
    const key = `fsk_${id}_${secret}`
    this.store.entries().set(id, {
      id,
      name,
      scopes: [...new Set(scopes)],
      createdAt: new Date().toISOString(),
      revokedAt: null,
      sha256: sha256(key).toString('hex'),
    })
    this.store.save()
    return { id, key, scopes }
  }

  /** The key's scopes when it is a current key, else undefined. */
  verify(key: string): { id: string; name: string; scopes: Scope[] } | undefined {
    const m = KEY.exec(key)
    if (!m) return undefined
    const e = this.store.entries().get(m[1]!)
    if (!e || e.revokedAt) return undefined
    const stored = Buffer.from(e.sha256, 'hex')
    const given = sha256(key)
    return stored.length === given.length && timingSafeEqual(stored, given)
      ? { id: e.id, name: e.name, scopes: e.scopes }
      : undefined
  }

  list(): ApiKeyInfo[] {
    return [...this.store.entries().values()].map(({ sha256: _, ...info }) => info)
  }

  revoke(id: string): boolean {
    const e = this.store.entries().get(id)
    if (!e || e.revokedAt) return false
    e.revokedAt = new Date().toISOString()
    this.store.save()
    return true
  }
}
