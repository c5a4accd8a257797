import path from 'node:path'
import type { Registry } from 'prom-client'
import type { SchemaRegistry } from '../core/envelope/registry'
import { createSchemaRegistry } from '../core/envelope/telemetry'
import type { EventLog } from '../core/kafka/log'
import type { Logger } from '../core/logging/logger'
import type { ApiRoleConfig } from './config'
import { ApiKeyStore } from './keys'
import { alertPublisher, topicRules } from './rules'
import { buildApi } from './server'
import type { ReadStore } from './store'

/** What `startApi` needs besides configuration; `fleetstream up` adds its pipeline's counters and metrics. */
export interface ApiParts {
  log: EventLog
  store: ReadStore
  logger: Logger
  /** The process's schema registry client (default: one made from `schemaRegistry`). */
  registry?: SchemaRegistry
  pipelineStats?: () => Promise<Record<string, number>>
  metricsRegistries?: () => Registry[] | Promise<Registry[]>
}

/** A listening API and how to stop it (the store and the log stay the caller's). */
export interface StartedApi {
  port: number
  close(): Promise<void>
}

/**
 * The query API as configured: rules read from the rules topic (`api.rules`), acknowledgements
 * published to the alerts topic (`api.publishAcks`), keys from `api.keysFile`, listening on
 * `api.host:api.port`. One assembly for `fleetstream api` and `fleetstream up`.
 */
export async function startApi(cfg: ApiRoleConfig, parts: ApiParts): Promise<StartedApi> {
  const { log, logger } = parts
  const registry = parts.registry ?? createSchemaRegistry(cfg.schemaRegistry)
  const rules = cfg.api.rules
    ? await topicRules({
        log,
        registry,
        topic: cfg.topics.rules,
        groupId: `${cfg.sinks.applicationId}-api-rules-${process.pid}-${Date.now().toString(36)}`,
        logger,
      })
    : undefined
  try {
    const { app } = await buildApi({
      store: parts.store,
      keys: new ApiKeyStore(path.resolve(cfg.api.keysFile)),
      logger,
      limits: cfg.api.limits,
      rules,
      publishAlert: cfg.api.publishAcks ? await alertPublisher(log, registry, cfg.topics.alerts) : undefined,
      pipelineStats: parts.pipelineStats,
      metricsRegistries: parts.metricsRegistries,
    })
    await app.listen({ host: cfg.api.host, port: cfg.api.port })
    const address = app.server.address()
    return {
      port: typeof address === 'object' && address ? address.port : cfg.api.port,
      close: async () => {
        await app.close()
        await rules?.close()
      },
    }
  } catch (err) {
    await rules?.close()
    throw err
  }
}
