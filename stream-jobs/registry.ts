import { AvroCodec } from '../core/envelope/codec'
import { loadBundledSchema } from '../core/envelope/registry'
import { createSchemaRegistry, createTelemetryCodec } from '../core/envelope/telemetry'
import type { Device, Rollup } from '../schemas/types.generated'
import type { JobsRoleConfig } from './config'
import { enrichJob } from './jobs/enrich'
import { rollupJob } from './jobs/rollup'
import type { StreamJob } from './runtime/job'

/** A job that `fleetstream job <name>` can run, built from configuration. */
export interface JobEntry {
  name: string
  description: string
  build(cfg: JobsRoleConfig): Promise<StreamJob<unknown>>
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
        device: await AvroCodec.create<Device>(
          registry,
          'dev.fleetstream.Device',
          loadBundledSchema('device.avsc'),
        ),
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
        time: {
          outOfOrdernessMs: j.outOfOrdernessMs,
          idleTimeoutMs: j.idleTimeoutMs,
          maxFutureMs: j.maxFutureMs,
        },
        telemetry: await createTelemetryCodec(registry),
        rollup: await AvroCodec.create<Rollup>(
          registry,
          'dev.fleetstream.Rollup',
          loadBundledSchema('rollup.avsc'),
        ),
      }) as StreamJob<unknown>
    },
  },
]
