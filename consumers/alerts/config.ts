import { z } from 'zod'
import { coreConfig } from '../../core/config/schema'

/** Retry policy of a delivery: attempts, then the dead-letter topic. */
const retry = {
  /** Attempts before the alert goes to the dead-letter topic. */
  maxAttempts: z.number().int().min(1).max(100).default(6),
  initialBackoffMs: z.number().int().min(1).default(500),
  maxBackoffMs: z.number().int().min(1).default(30_000),
}

/** Settings of the alert consumers (`alerts:` in the YAML file); each one given runs. */
export const alertsConfig = z.strictObject({
  /** Prefix of the consumers' groups: `<applicationId>-alerts-<consumer>`. */
  applicationId: z
    .string()
    .regex(/^[A-Za-z0-9._-]+$/)
    .default('fleetstream'),
  webhook: z
    .strictObject({
      url: z.url(),
      /** HMAC-SHA256 key of the `x-fleetstream-signature` header. */
      secret: z.string().min(16),
      timeoutMs: z.number().int().min(1).default(5_000),
      ...retry,
    })
    .optional(),
  mqtt: z
    .strictObject({
      url: z.string().default('mqtt://127.0.0.1:1883'),
      username: z.string().optional(),
      password: z.string().optional(),
      clientId: z.string().min(1).default('fleetstream-alerts'),
      /** Where a device's alerts go: its own downlink topic. */
      topic: z.string().min(1).default('devices/{deviceId}/downlink'),
      ...retry,
    })
    .optional(),
  log: z.strictObject({ enabled: z.boolean().default(true) }).prefault({}),
  /** Prometheus `/metrics`, `/healthz`, `/readyz` of the process (port 0: any free port). */
  metrics: z
    .strictObject({
      host: z.string().default('0.0.0.0'),
      port: z.number().int().min(0).max(65535).default(9465),
    })
    .prefault({}),
})

/** Configuration of the `fleetstream alerts` process. */
export const alertsRoleConfig = coreConfig.extend({ alerts: alertsConfig.prefault({}) })
/** The validated configuration of the alerts process. */
export type AlertsRoleConfig = z.infer<typeof alertsRoleConfig>
