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
   * How long a partition's records wait, from when the first of them is seen, for more before
   * a consumer of the embedded log takes them as a batch, unless a full batch is there
   * (Kafka's fetch.max.wait.ms with fetch.min.bytes, per partition). Small batches cost each
   * stage a transaction apiece: a fleet sending at a steady rate otherwise arrives a reading or
   * two at a time. 20 ms: at 2,000 readings/s `up` used 12.7 instead of 18.7 CPU-s per 40,000
   * readings (5 ms), and 50 ms saved little more (12.4); each stage may add up to this much
   * latency. 0: take each record as it comes.
   */
  fetchLingerMs: z.number().int().min(0).max(1_000).default(20),
  /**
   * The embedded log's group commit: a journal sync starts no sooner than this long after the
   * one before it started, and every append that arrives meanwhile shares it (0: sync as soon
   * as the one before ends). Each fsync costs the machine CPU however little it writes, and
   * every produce, transaction and offset commit of every stage waits for one; each durable
   * step may wait up to this much longer.
   */
  groupCommitMs: z.number().min(0).max(100).default(2),
  /**
   * Worker threads for the stream jobs and the sink, beside the bridge and the embedded log on
   * the main thread (embedded/jobs-thread.ts). 2 (default): enrich and the sink — the path from
   * a device to its row — on one, rollup and rules on the other, so that neither waits behind
   * the other's batches. bench:up, same code, two runs each (1 → 2): 19,532 → 22,442 and
   * 17,210 → 20,708 readings/s in messages of 10; at 20,000/s p50 3,224 → 2,438 and 1,481 →
   * 879 ms. 1: all four on one thread (before it, with everything on the main thread: 19,396 →
   * 22,153 readings/s, p99 815 → 479 ms at 2,000/s). 0: everything on the main thread.
   */
  jobsThreads: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(2),
  /**
   * How many nice levels (Linux) below the rest of `up` a jobs thread runs when it has no role
   * on the path from a device to its row (enrich, the sink): with `up.jobsThreads` 2, the
   * rollup and rules thread (at most nice 19). When the cores are busy the kernel then runs the
   * bridge, the log and the sink first, and rollups and rules catch up in the time left (their
   * consumer lag shows how far behind they are). bench:up, eight alternating pairs (0 → 10):
   * one reading per message, where the bridge's thread is the bound, 7,541–11,000 →
   * 8,741–12,389 readings/s, higher in seven pairs (median ratio 1.10); at 20,000/s in
   * messages of 10 p99 no different beyond the noise (lower in four pairs, higher in four). 0:
   * the same priority as the rest.
   */
  analyticsNice: z.number().int().min(0).max(19).default(10),
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
