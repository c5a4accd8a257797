import {
  createHash,
  createHmac,
  randomBytes,
  scrypt as scryptCb,
  timingSafeEqual,
  type ScryptOptions,
} from 'node:crypto'
import { JsonMapFile } from '../../core/files/json-map-file'
import type { Pool } from 'pg'

/** Who a verified device is. */
export interface DeviceIdentity {
  deviceId: string
  tenant: string | null
}

/** A device as listed (never with its secret). */
export interface DeviceInfo extends DeviceIdentity {
  createdAt: string
  revokedAt: string | null
}

/** Where device credentials live. Tokens are stored only as salted hashes (see TokenHashing). */
export interface DeviceStore {
  /** Creates a device with a new random token, returned once and never stored in clear. */
  add(deviceId: string, opts?: { tenant?: string | null }): Promise<{ deviceId: string; token: string }>
  /** The device's identity when `token` is its current token, else undefined. */
  verify(deviceId: string, token: string): Promise<DeviceIdentity | undefined>
  list(): Promise<DeviceInfo[]>
  /** Revokes the device's token; true when there was one. */
  revoke(deviceId: string): Promise<boolean>
  close(): Promise<void>
}

/** Device ids: one MQTT topic level, printable, no wildcards or separators. */
export const DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/

const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 }

/**
 * How new device tokens are stored. `sha256` (the default): `sha256$salt$hmac`, an
 * HMAC-SHA-256 of the token keyed by a random salt, checked in microseconds. That is enough
 * because every device token is 32 random bytes made here (`newToken`), never a password a
 * person picked: nothing can be guessed from its hash however fast the hash is (slow hashes
 * stretch low-entropy secrets; NIST SP 800-63B asks it for memorized secrets only), as for API
 * keys (`api/keys.ts`). `scrypt`: `scrypt$N$r$p$salt$hash` at cost `N` (16384 ≈ 40 ms of CPU
 * a login), for deployments whose policy asks for a slow hash; 10,000 devices logging in after
 * a restart then cost ~400 CPU-seconds. Tokens stored either way verify side by side.
 */
export type TokenHashing = { kind: 'sha256' } | { kind: 'scrypt'; N?: number }

function scrypt(secret: string, salt: Buffer, keylen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCb(secret, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))),
  )
}

const hmac = (salt: Buffer, token: string): Buffer => createHmac('sha256', salt).update(token).digest()

/** The stored form of `token` (see TokenHashing). */
export async function hashToken(token: string, how: TokenHashing = { kind: 'sha256' }): Promise<string> {
  const salt = randomBytes(16)
  if (how.kind === 'sha256')
    return ['sha256', salt.toString('base64url'), hmac(salt, token).toString('base64url')].join('$')
  const N = how.N ?? SCRYPT.N
  const key = await scrypt(token, salt, SCRYPT.keylen, {
    N,
    r: SCRYPT.r,
    p: SCRYPT.p,
    maxmem: 64 * 1024 * 1024,
  })
  return ['scrypt', N, SCRYPT.r, SCRYPT.p, salt.toString('base64url'), key.toString('base64url')].join('$')
}

/** Checks `token` against a stored hash (either kind) in constant time. */
export async function tokenMatches(token: string, stored: string): Promise<boolean> {
  const parts = stored.split('$')
  let key: Buffer
  let expected: Buffer
  if (parts[0] === 'sha256' && parts.length === 3 && parts[1] && parts[2]) {
    expected = Buffer.from(parts[2], 'base64url')
    key = hmac(Buffer.from(parts[1], 'base64url'), token)
  } else if (parts[0] === 'scrypt' && parts.length === 6 && parts[4] && parts[5]) {
    const [, n, r, p, salt, hash] = parts as [string, string, string, string, string, string]
    expected = Buffer.from(hash, 'base64url')
    key = await scrypt(token, Buffer.from(salt, 'base64url'), expected.length, {
      N: Number(n),
      r: Number(r),
      p: Number(p),
      maxmem: 64 * 1024 * 1024,
    })
  } else return false
  return key.length === expected.length && timingSafeEqual(key, expected)
}

/** A new device token: 32 random bytes, base64url. */
export function newToken(): string {
  return randomBytes(32).toString('base64url')
}

function checkDeviceId(deviceId: string): void {
  if (!DEVICE_ID.test(deviceId))
    throw new Error(`device id "${deviceId.slice(0, 64)}" is invalid (letters, digits, . _ : -; at most 128)`)
}

/**
 * Remembers successful verifications for a short time (by a SHA-256 of the token, never the
 * token), so HTTP requests do not each pay for scrypt. A revoke in this process clears it;
 * in other processes a revoked token stops working within `ttlMs`.
 */
export class VerifyCache {
  private readonly hits = new Map<string, { digest: Buffer; identity: DeviceIdentity; at: number }>()
  /** Verifications under way, by device and token digest: a login storm costs one scrypt per device. */
  private readonly inFlight = new Map<string, Promise<DeviceIdentity | undefined>>()
  constructor(private readonly ttlMs: number) {}

  /** The cached identity, or the result of `slow()`, shared by concurrent calls with the same credentials. */
  verify(
    deviceId: string,
    token: string,
    slow: () => Promise<DeviceIdentity | undefined>,
  ): Promise<DeviceIdentity | undefined> {
    const digest = createHash('sha256').update(token).digest()
    const hit = this.hits.get(deviceId)
    if (hit && Date.now() - hit.at <= this.ttlMs && timingSafeEqual(digest, hit.digest))
      return Promise.resolve(hit.identity)
    const key = `${deviceId}\u0000${digest.toString('hex')}`
    let pending = this.inFlight.get(key)
    if (!pending) {
      pending = slow().then(
        (identity) => {
          if (identity && this.inFlight.get(key) === pending && this.ttlMs > 0) {
            if (this.hits.size > 100_000) this.hits.clear()
            this.hits.set(deviceId, { digest, identity, at: Date.now() })
          }
          this.inFlight.delete(key)
          return identity
        },
        (err: unknown) => {
          this.inFlight.delete(key)
          throw err
        },
      )
      this.inFlight.set(key, pending)
    }
    return pending
  }

  /** Forgets a device (revoked or given a new token), including verifications under way. */
  delete(deviceId: string): void {
    this.hits.delete(deviceId)
    for (const k of this.inFlight.keys()) if (k.startsWith(`${deviceId}\u0000`)) this.inFlight.delete(k)
  }
}

interface FileEntry {
  hash: string
  tenant: string | null
  createdAt: string
  revokedAt: string | null
}

/** Device credentials in a JSON file (the embedded default). Re-read when the file changes. */
export class FileDeviceStore implements DeviceStore {
  private readonly store: JsonMapFile<FileEntry>
  private readonly cache: VerifyCache
  /** Added or revoked, not yet written (see `saveSoon`). */
  private readonly unsaved = new Map<string, FileEntry>()
  private saving: Promise<void> | undefined

  constructor(
    file: string,
    cacheTtlMs = 60_000,
    private readonly hashing?: TokenHashing,
  ) {
    this.store = new JsonMapFile<FileEntry>(file, 'devices')
    this.cache = new VerifyCache(cacheTtlMs)
  }

  async add(
    deviceId: string,
    opts: { tenant?: string | null } = {},
  ): Promise<{ deviceId: string; token: string }> {
    checkDeviceId(deviceId)
    const token = newToken()
    const hash = await hashToken(token, this.hashing)
    const entry = { hash, tenant: opts.tenant ?? null, createdAt: new Date().toISOString(), revokedAt: null }
    this.store.entries().set(deviceId, entry)
    this.unsaved.set(deviceId, entry)
    this.cache.delete(deviceId)
    await this.saveSoon()
    return { deviceId, token }
  }

  /**
   * Writes the entries once the adds of this turn of the event loop are in, for all of them:
   * a save rewrites the whole file, so one per device made registering a fleet quadratic
   * (10,000 devices: ~80 s, 20 GB written). Entries not yet written are put back on top of a
   * file that another process changed meanwhile (`entries()` re-reads it).
   */
  private saveSoon(): Promise<void> {
    return (this.saving ??= new Promise<void>((resolve, reject) =>
      setImmediate(() => {
        this.saving = undefined
        try {
          const entries = this.store.entries()
          for (const [id, e] of this.unsaved) entries.set(id, e)
          this.unsaved.clear()
          this.store.save()
          resolve()
        } catch (err) {
          reject(err as Error)
        }
      }),
    ))
  }

  verify(deviceId: string, token: string): Promise<DeviceIdentity | undefined> {
    return this.cache.verify(deviceId, token, async () => {
      const e = this.store.entries().get(deviceId)
      if (!e || e.revokedAt || !(await tokenMatches(token, e.hash))) return undefined
      return { deviceId, tenant: e.tenant }
    })
  }

  async list(): Promise<DeviceInfo[]> {
    return [...this.store.entries()].map(([deviceId, e]) => ({
      deviceId,
      tenant: e.tenant,
      createdAt: e.createdAt,
      revokedAt: e.revokedAt,
    }))
  }

  async revoke(deviceId: string): Promise<boolean> {
    const e = this.store.entries().get(deviceId)
    this.cache.delete(deviceId)
    if (!e || e.revokedAt) return false
    e.revokedAt = new Date().toISOString()
    this.unsaved.set(deviceId, e)
    await this.saveSoon()
    return true
  }

  async close(): Promise<void> {}
}

/** Device credentials in PostgreSQL (table `fs_device_credentials`, created on first use). */
export class PostgresDeviceStore implements DeviceStore {
  private ready: Promise<void> | undefined
  private readonly cache: VerifyCache

  constructor(
    private readonly pool: Pool,
    cacheTtlMs = 60_000,
    private readonly hashing?: TokenHashing,
  ) {
    this.cache = new VerifyCache(cacheTtlMs)
  }

  private migrate(): Promise<void> {
    this.ready ??= this.pool
      .query(
        `CREATE TABLE IF NOT EXISTS fs_device_credentials (
           device_id text PRIMARY KEY,
           tenant text,
           token_hash text NOT NULL,
           created_at timestamptz NOT NULL DEFAULT now(),
           revoked_at timestamptz)`,
      )
      .then(() => undefined)
    return this.ready
  }

  async add(
    deviceId: string,
    opts: { tenant?: string | null } = {},
  ): Promise<{ deviceId: string; token: string }> {
    checkDeviceId(deviceId)
    await this.migrate()
    const token = newToken()
    await this.pool.query(
      `INSERT INTO fs_device_credentials (device_id, tenant, token_hash) VALUES ($1, $2, $3)
       ON CONFLICT (device_id) DO UPDATE SET tenant = EXCLUDED.tenant, token_hash = EXCLUDED.token_hash, created_at = now(), revoked_at = NULL`,
      [deviceId, opts.tenant ?? null, await hashToken(token, this.hashing)],
    )
    this.cache.delete(deviceId)
    return { deviceId, token }
  }

  verify(deviceId: string, token: string): Promise<DeviceIdentity | undefined> {
    return this.cache.verify(deviceId, token, async () => {
      await this.migrate()
      const r = await this.pool.query<{ tenant: string | null; token_hash: string }>(
        'SELECT tenant, token_hash FROM fs_device_credentials WHERE device_id = $1 AND revoked_at IS NULL',
        [deviceId],
      )
      const row = r.rows[0]
      if (!row || !(await tokenMatches(token, row.token_hash))) return undefined
      return { deviceId, tenant: row.tenant }
    })
  }

  async list(): Promise<DeviceInfo[]> {
    await this.migrate()
    const r = await this.pool.query<{
      device_id: string
      tenant: string | null
      created_at: Date
      revoked_at: Date | null
    }>('SELECT device_id, tenant, created_at, revoked_at FROM fs_device_credentials ORDER BY device_id')
    return r.rows.map((x) => ({
      deviceId: x.device_id,
      tenant: x.tenant,
      createdAt: x.created_at.toISOString(),
      revokedAt: x.revoked_at?.toISOString() ?? null,
    }))
  }

  async revoke(deviceId: string): Promise<boolean> {
    await this.migrate()
    this.cache.delete(deviceId)
    const r = await this.pool.query(
      'UPDATE fs_device_credentials SET revoked_at = now() WHERE device_id = $1 AND revoked_at IS NULL',
      [deviceId],
    )
    return (r.rowCount ?? 0) > 0
  }

  async close(): Promise<void> {
    await this.pool.end()
  }
}
