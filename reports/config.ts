import { z } from 'zod'
import { apiRoleConfig } from '../api/config'

/** Settings of `fleetstream reports` (`reports:` in the YAML file). The store is `api.store`. */
export const reportsConfig = z.strictObject({
  outDir: z.string().min(1).default('reports'),
  /** Cron expressions (croner syntax), in `timezone`. */
  daily: z.string().min(1).default('0 1 * * *'),
  monthly: z.string().min(1).default('0 2 1 * *'),
  timezone: z.string().min(1).default('UTC'),
  /** A silence between two readings longer than this counts as a gap. */
  gapMs: z.number().int().min(1).default(600_000),
  maxReadingsPerDevice: z.number().int().min(1).default(1_000_000),
  /** POSTs each report (JSON) here when set. */
  webhook: z.url().optional(),
})

export const reportsRoleConfig = apiRoleConfig.extend({ reports: reportsConfig.prefault({}) })
export type ReportsRoleConfig = z.infer<typeof reportsRoleConfig>
