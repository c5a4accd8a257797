import { AvroCodec } from '../core/envelope/codec'
import { createSchemaRegistry, createTelemetryCodec } from '../core/envelope/telemetry'
import type { Device, Rollup } from '../schemas/types.generated'
import type { JobsRoleConfig } from './config'
import { enrichJob } from './jobs/enrich'
import { rollupJob } from './jobs/rollup'
import type { EventLog } from '../core/kafka/log'
import type { Logger } from '../core/logging/logger'
import { RuleMetrics } from '../rules/metrics'
import { RuleTable } from '../rules/table'
import type { Alert, RuleDefinition } from '../schemas/types.generated'
import { rulesJob } from './jobs/rules'
import type { StreamJob } from './runtime/job'
import type { JobMetrics } from './runtime/metrics'
import { runJob } from './runtime/runner'

/** What a job may need besides configuration: the event log, logging, metrics, and cleanup. */
export interface JobContext {
  log: EventLog
  logger: Logger
  metrics: JobMetrics
  /** Registers work to do when the job stops (after the runner has closed). */
  onClose(fn: () => Promise<void>): void
}

/** A job that `fleetstream job <name>` can run, built from configuration. */
export interface JobEntry {
  name: string
  description: string
  build(cfg: JobsRoleConfig, ctx: JobContext): Promise<StreamJob<unknown>>
}

/** The stream jobs fleetstream ships: the only place that names them. */
export const jobRegistry: JobEntry[] = [
  {
    name: 'enrich',
    description: 'raw telemetry joined with the device registry (iot.devices) into iot.telemetry.enriched',
    build: async (cfg) => {
      const registry = createSchemaRegistry(cfg.schemaRegistry)
      return enrichJob({
        rawTopic: cfg.topics.raw,
        devicesTopic: cfg.topics.devices,
        enrichedTopic: cfg.topics.enriched,
        deadletterTopic: cfg.topics.deadletter,
        unknownDevices: cfg.jobs.enrich.unknownDevices,
        holdMs: cfg.jobs.enrich.holdMs,
        maxHeld: cfg.jobs.enrich.maxHeld,
        telemetry: await createTelemetryCodec(registry),
        device: await AvroCodec.bundled<Device>(registry, 'device.avsc'),
      }) as StreamJob<unknown>
    },
  },
  {
    name: 'rollup',
    description:
      'per-device, per-metric 1-minute and 1-hour rollups (event time, allowed lateness, late topic)',
    build: async (cfg) => {
      const registry = createSchemaRegistry(cfg.schemaRegistry)
      const j = cfg.jobs
      return rollupJob({
        inputTopic: j.rollup.input === 'raw' ? cfg.topics.raw : cfg.topics.enriched,
        outputs: j.rollup.windows.map((w) =>
          w === '1m'
            ? { sizeMs: 60_000, topic: cfg.topics.rollups1m }
            : { sizeMs: 3_600_000, topic: cfg.topics.rollups1h },
        ),
        lateTopic: cfg.topics.late,
        deadletterTopic: cfg.topics.deadletter,
        allowedLatenessMs: j.allowedLatenessMs,
        maxFiringsPerStep: j.rollup.maxFiringsPerStep,
        time: {
          outOfOrdernessMs: j.outOfOrdernessMs,
          idleTimeoutMs: j.idleTimeoutMs,
          maxFutureMs: j.maxFutureMs,
        },
        telemetry: await createTelemetryCodec(registry),
        rollup: await AvroCodec.bundled<Rollup>(registry, 'rollup.avsc'),
      }) as StreamJob<unknown>
    },
  },
  {
    name: 'rules',
    description:
      'the rules in force (followed from iot.rules) over enriched readings and the device registry → alert events on iot.alerts',
    build: async (cfg, ctx) => {
      const registry = createSchemaRegistry(cfg.schemaRegistry)
      const metrics = new RuleMetrics(ctx.metrics.registry)
      const table = new RuleTable(
        await AvroCodec.bundled<RuleDefinition>(registry, 'rule-definition.avsc'),
        ctx.logger.child({ component: 'rules' }),
        metrics,
      )
      // Every instance reads every rule: a consumer group of its own for the rules topic.
      const follower = await table.follow(
        ctx.log,
        cfg.topics.rules,
        `${cfg.jobs.applicationId}-rules-table-${cfg.jobs.instanceId}-${Date.now().toString(36)}`,
      )
      ctx.onClose(() => follower.close())
      const j = cfg.jobs
      return rulesJob({
        enrichedTopic: cfg.topics.enriched,
        devicesTopic: cfg.topics.devices,
        alertsTopic: cfg.topics.alerts,
        deadletterTopic: cfg.topics.deadletter,
        table,
        time: {
          outOfOrdernessMs: j.outOfOrdernessMs,
          idleTimeoutMs: j.idleTimeoutMs,
          maxFutureMs: j.maxFutureMs,
        },
        telemetry: await createTelemetryCodec(registry),
        device: await AvroCodec.bundled<Device>(registry, 'device.avsc'),
        alert: await AvroCodec.bundled<Alert>(registry, 'alert.avsc'),
        metrics,
      }) as StreamJob<unknown>
    },
  },
]

/**
 * Builds a registered job from configuration and runs it (`fleetstream job <name>` and
 * `fleetstream up`): consumer group `<applicationId>-<name>`, changelog
 * `<applicationId>-<name>-changelog`. `close` stops the runner, then what the job registered.
 */
export async function startRegisteredJob(
  entry: JobEntry,
  cfg: JobsRoleConfig,
  ctx: Omit<JobContext, 'onClose'> & { onFatal: (err: Error) => void },
): Promise<{ close(): Promise<void> }> {
  const cleanups: (() => Promise<void>)[] = []
  const job = await entry.build(cfg, { ...ctx, onClose: (fn) => cleanups.push(fn) })
  const running = await runJob(job, ctx.log, {
    groupId: `${cfg.jobs.applicationId}-${entry.name}`,
    instanceId: cfg.jobs.instanceId,
    changelogTopic: `${cfg.jobs.applicationId}-${entry.name}-changelog`,
    tickMs: cfg.jobs.tickMs,
    commitIntervalMs: cfg.jobs.commitIntervalMs,
    metrics: ctx.metrics,
    logger: ctx.logger,
    onFatal: ctx.onFatal,
  })
  return {
    close: async () => {
      await running.close()
      for (const fn of cleanups) await fn()
    },
  }
}
