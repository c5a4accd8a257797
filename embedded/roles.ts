import { sinkCodecs, sinkConcurrency, sinkFor, sinkInputs } from '../consumers/sinks/cli'
import type { SinkMetrics } from '../consumers/sinks/metrics'
import { runSink } from '../consumers/sinks/runtime'
import type { SchemaRegistry } from '../core/envelope/registry'
import type { EventLog } from '../core/kafka/log'
import type { Logger } from '../core/logging/logger'
import { jobRegistry, startRegisteredJob } from '../stream-jobs/registry'
import type { JobMetrics } from '../stream-jobs/runtime/metrics'
import type { UpRoleConfig } from './config'

/** A role `up` started. */
export interface Started {
  close(): Promise<void>
}

/** The stream jobs `up` runs, in this order. */
export const UP_JOBS = ['enrich', 'rollup', 'rules'] as const

/** Starts `up`'s stream jobs over `log`, each as `fleetstream job <name>` would. */
export async function startUpJobs(
  cfg: UpRoleConfig,
  log: EventLog,
  logger: Logger,
  metrics: JobMetrics,
  onFatal: (job: string) => void,
): Promise<Started[]> {
  const started: Started[] = []
  for (const name of UP_JOBS) {
    const entry = jobRegistry.find((j) => j.name === name)!
    started.push(await startRegisteredJob(entry, cfg, { log, logger, metrics, onFatal: () => onFatal(name) }))
  }
  return started
}

/** Starts `up`'s sink (to `up.store`) over `log`, as `fleetstream sink <store>` would. */
export async function startUpSink(
  cfg: UpRoleConfig,
  log: EventLog,
  logger: Logger,
  metrics: SinkMetrics,
  registry: SchemaRegistry,
): Promise<Started> {
  return runSink(log, sinkFor(cfg.up.store, cfg), {
    groupId: `${cfg.sinks.applicationId}-sink-${cfg.up.store}`,
    inputs: sinkInputs(cfg),
    deadletterTopic: cfg.topics.deadletter,
    codecs: await sinkCodecs(registry),
    retry: cfg.sinks.retry,
    logger,
    metrics,
    concurrency: sinkConcurrency(cfg.up.store, cfg),
  })
}
