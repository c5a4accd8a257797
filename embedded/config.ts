import { z } from 'zod'
import { apiConfig } from '../api/config'
import { bridgeConfig } from '../bridge/config'
import { alertsConfig } from '../consumers/alerts/config'
import { sinksConfig } from '../consumers/sinks/config'
import { coreConfig } from '../core/config/schema'
import { jobsConfig } from '../stream-jobs/config'

/** Settings of `fleetstream up` (`up:` in the YAML file). */
export const upConfig = z.strictObject({
  /** Where the embedded log, the SQLite store, device credentials and API keys live. */
  dataDir: z.string().min(1).default('data'),
  /** Use the Kafka of `kafka.brokers` instead of the embedded log. */
  kafka: z.boolean().default(false),
  /** The store the sink writes and the API reads. */
  store: z.enum(['sqlite', 'postgres', 'cassandra', 'cratedb']).default('sqlite'),
  /** Rule files published to the rules topic when it has none yet. */
  rules: z.string().min(1).optional(),
  /** A demo device, made on first start; its token is kept in `<dataDir>/demo-device.json`. */
  demoDevice: z.string().min(1).default('demo-1'),
  /**
   * How long a consumer of the embedded log that was idle waits, once a record arrives, for
   * more before it takes a batch (Kafka's fetch.max.wait with a minimum size, simplified).
   * Small batches cost each stage a transaction apiece: a fleet sending at a steady rate
   * otherwise arrives one reading at a time. 0: take each record as it comes.
   */
  fetchLingerMs: z.number().int().min(0).max(1_000).default(5),
})

/** Configuration of `fleetstream up`: every role's section, one process. */
export const upRoleConfig = coreConfig.extend({
  bridge: bridgeConfig.prefault({}),
  jobs: jobsConfig.prefault({}),
  alerts: alertsConfig.prefault({}),
  sinks: sinksConfig.prefault({}),
  api: apiConfig.prefault({}),
  up: upConfig.prefault({}),
})
export type UpRoleConfig = z.infer<typeof upRoleConfig>
