import { z } from 'zod'
import { coreConfig } from '../core/config/schema'
import { sinksConfig } from '../consumers/sinks/config'

/** Settings of the query API (`api:` in the YAML file). The store's connection is `sinks.<store>`. */
export const apiConfig = z.strictObject({
  host: z.string().default('0.0.0.0'),
  port: z.number().int().min(0).max(65535).default(8090),
  /** Which store the API reads (the one the sinks write). */
  store: z.enum(['postgres', 'cassandra', 'cratedb', 'sqlite']).default('postgres'),
  /** API keys (SHA-256 hashes), made with `fleetstream apikeys add`. */
  keysFile: z.string().min(1).default('data/api-keys.json'),
  /** Serve the rules of the rules topic, and let `write:rules` keys publish them. */
  rules: z.boolean().default(true),
  /** Publish acknowledgements to the alerts topic (alert consumers see them). */
  publishAcks: z.boolean().default(true),
  limits: z
    .strictObject({
      /** The longest range one request may read. */
      maxRangeMs: z
        .number()
        .int()
        .min(1)
        .default(31 * 86_400_000),
      /** The most rows one request may return. */
      maxRows: z.number().int().min(1).max(1_000_000).default(10_000),
      /** The most intervals one series request may return. */
      maxPoints: z.number().int().min(1).max(1_000_000).default(10_000),
    })
    .prefault({}),
})

/** Configuration of an API process. */
export const apiRoleConfig = coreConfig.extend({
  sinks: sinksConfig.prefault({}),
  api: apiConfig.prefault({}),
})
/** The validated configuration of an API process. */
export type ApiRoleConfig = z.infer<typeof apiRoleConfig>
