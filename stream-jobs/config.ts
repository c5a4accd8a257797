import os from 'node:os'
import { z } from 'zod'
import { coreConfig, stringList } from '../core/config/schema'

/** Settings of stream jobs (`jobs:` in the YAML file). */
export const jobsConfig = z.strictObject({
  /** Prefix of a deployment's consumer groups and changelog topics (like Kafka Streams' application.id). */
  applicationId: z
    .string()
    .regex(/^[A-Za-z0-9._-]+$/)
    .default('fleetstream'),
  /** Stable per running instance (a pod name): the transactional id of its producer, so a
   * restarted instance fences the transactions its previous incarnation left open. */
  instanceId: z.string().min(1).default(os.hostname()),
  /** Bounded out-of-orderness of event time, ms. */
  outOfOrdernessMs: z.number().int().min(0).default(5_000),
  /** A partition with no readings for this long (processing time) moves its watermark on, ms. */
  idleTimeoutMs: z.number().int().min(1).default(30_000),
  /** Readings further ahead of processing time are dead-lettered (device clock skew), ms. */
  maxFutureMs: z.number().int().min(0).default(300_000),
  /** A late reading inside this updates its window and re-emits it; later ones go to the late topic, ms. */
  allowedLatenessMs: z.number().int().min(0).default(60_000),
  tickMs: z.number().int().min(50).default(1_000),
  /** Least time between the starts of two of an instance's transactions, ms (Kafka Streams'
   * commit.interval.ms): batches that come meanwhile wait and go into the next one. 0: a
   * transaction starts as soon as the previous one has ended. */
  commitIntervalMs: z.number().int().min(0).max(60_000).default(0),
  /** Prometheus `/metrics`, `/healthz` and `/readyz` of the job process (port 0: any free port). */
  metrics: z
    .strictObject({
      host: z.string().default('0.0.0.0'),
      port: z.number().int().min(0).max(65535).default(9464),
    })
    .prefault({}),
  enrich: z
    .strictObject({
      /** A reading of a device the registry does not know: pass it on flagged, hold it until the
       * device is registered (at most holdMs, then dead-letter), or dead-letter it. */
      unknownDevices: z.enum(['pass', 'hold', 'deadletter']).default('pass'),
      /** `hold`: how long a reading waits for its device to be registered, ms. */
      holdMs: z.number().int().min(1).default(60_000),
      /** `hold`: most readings waiting per partition; beyond that they are dead-lettered. */
      maxHeld: z.number().int().min(1).default(10_000),
    })
    .prefault({}),
  rollup: z
    .strictObject({
      /** Which topic the rollups read: `enriched` (after the enrichment job) or `raw`. */
      input: z.enum(['enriched', 'raw']).default('enriched'),
      /** Which tumbling rollups to compute: `1m` → topics.rollups1m, `1h` → topics.rollups1h. */
      windows: stringList(z.enum(['1m', '1h'])).default(['1m', '1h']),
      /**
       * At most this many windows fired per step of one input partition; the rest follow in the
       * next steps (a tick at the latest). Every device's 1-minute windows close at the same
       * watermark: 10,000 devices × 4 metrics fired in one step made a 33,000-record
       * transaction that held the job's thread for ~650 ms.
       */
      maxFiringsPerStep: z.number().int().min(1).default(1_000),
    })
    .prefault({}),
})

/** Configuration of a process running a stream job. */
export const jobsRoleConfig = coreConfig.extend({ jobs: jobsConfig.prefault({}) })
/** The validated configuration of a job process. */
export type JobsRoleConfig = z.infer<typeof jobsRoleConfig>
