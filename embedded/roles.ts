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

/** What `up` runs over its log besides the bridge, the alert consumer and the API. */
export type UpRole = (typeof UP_JOBS)[number] | 'sink'

/**
 * The roles of each worker thread, by `up.jobsThreads`. With two, the path from a device to its
 * row (enrich, then the sink) has a thread to itself, and the rollup and rules jobs another.
 */
export const THREAD_ROLES: Record<1 | 2, UpRole[][]> = {
  1: [['enrich', 'rollup', 'rules', 'sink']],
  2: [
    ['enrich', 'sink'],
    ['rollup', 'rules'],
  ],
}

/** The roles on the path from a device to its row in the store. */
const ROW_PATH: readonly UpRole[] = ['enrich', 'sink']

/** Whether a thread running `roles` can yield the CPU to the rest (`up.analyticsNice`). */
export const offRowPath = (roles: readonly UpRole[]): boolean => !roles.some((r) => ROW_PATH.includes(r))

/** Starts `up`'s stream jobs among `roles` over `log`, each as `fleetstream job <name>` would. */
export async function startUpJobs(
  cfg: UpRoleConfig,
  log: EventLog,
  logger: Logger,
  metrics: JobMetrics,
  onFatal: (job: string) => void,
  roles: readonly UpRole[] = UP_JOBS,
): Promise<Started[]> {
  const started: Started[] = []
  for (const name of UP_JOBS.filter((j) => roles.includes(j))) {
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
