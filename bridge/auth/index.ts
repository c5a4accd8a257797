import path from 'node:path'
import { Pool } from 'pg'
import { ConfigError } from '../../core/errors'
import type { BridgeConfig } from '../config'
import { FileDeviceStore, PostgresDeviceStore, type DeviceStore, type TokenHashing } from './credentials'

/** The device store that configuration names (`bridge.auth.store`). */
export function createDeviceStore(auth: BridgeConfig['auth']): DeviceStore {
  const hashing: TokenHashing =
    auth.tokenHash === 'scrypt' ? { kind: 'scrypt', N: auth.scryptN } : { kind: 'sha256' }
  if (auth.store === 'postgres') {
    if (!auth.postgresUrl) {
      throw new ConfigError(
        'Invalid configuration: bridge.auth.postgresUrl is required when bridge.auth.store is postgres',
        [
          {
            key: 'bridge.auth.postgresUrl',
            source: 'configuration',
            message: 'required when bridge.auth.store is postgres',
          },
        ],
      )
    }
    return new PostgresDeviceStore(
      new Pool({ connectionString: auth.postgresUrl, max: 4 }),
      auth.cacheTtlMs,
      hashing,
    )
  }
  return new FileDeviceStore(path.resolve(auth.file), auth.cacheTtlMs, hashing)
}
