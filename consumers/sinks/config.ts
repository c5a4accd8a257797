import { z } from 'zod'
import { coreConfig, stringList } from '../../core/config/schema'

/** Settings of the sinks (`sinks:` in the YAML file). */
export const sinksConfig = z.strictObject({
  /** Prefix of the sinks' consumer groups: `<applicationId>-sink-<store>`. */
  applicationId: z
    .string()
    .regex(/^[A-Za-z0-9._-]+$/)
    .default('fleetstream'),
  /** Which telemetry topic the sinks store (`raw` or `enriched`). */
  input: z.enum(['raw', 'enriched']).default('enriched'),
  /** What the sink stores: readings, rollups (1m and 1h), alerts and the device registry. */
  store: stringList(z.enum(['telemetry', 'rollups', 'alerts', 'devices'])).default([
    'telemetry',
    'rollups',
    'alerts',
    'devices',
  ]),
  /**
   * Batches (of different partitions) written at once; each partition's batches stay in order.
   * 2: one batch is prepared while the other is in the database. More only adds lock contention
   * in PostgreSQL on 2 cores (bench:sinks: 4 → 0.76–0.84 of COPY, 2 → 0.89–0.96).
   */
  concurrency: z.number().int().min(1).max(64).default(2),
  retry: z
    .strictObject({
      maxAttempts: z.number().int().min(1).default(8),
      initialBackoffMs: z.number().int().min(1).default(200),
      maxBackoffMs: z.number().int().min(1).default(30_000),
    })
    .prefault({}),
  postgres: z
    .strictObject({
      url: z.string().min(1).default('postgres://fleetstream@127.0.0.1:5432/fleetstream'),
      /** The schema the tables live in (created when missing). */
      schema: z
        .string()
        .regex(/^[a-z_][a-z0-9_]{0,62}$/)
        .default('public'),
    })
    .prefault({}),
  cratedb: z
    .strictObject({
      /** CrateDB's HTTP endpoint (its `_sql` API), e.g. http://127.0.0.1:4200. */
      url: z.url().default('http://127.0.0.1:4200'),
      username: z.string().optional(),
      password: z.string().optional(),
    })
    .prefault({}),
  sqlite: z
    .strictObject({
      /** The embedded store's database file (`:memory:` for none). */
      file: z.string().min(1).default('data/fleetstream.db'),
      /**
       * Batches written at once (instead of `sinks.concurrency`): the writer thread commits the
       * batches that arrive together in one transaction, one fsync (sqliteRequestLoop). `up` at
       * 15,000 readings/s, 60-s probe runs: p99 413 and 426 ms with 8, 623 and 738 with 2.
       */
      concurrency: z.number().int().min(1).max(64).default(8),
    })
    .prefault({}),
  metrics: z
    .strictObject({
      host: z.string().default('0.0.0.0'),
      port: z.number().int().min(0).max(65535).default(9466),
    })
    .prefault({}),
  cassandra: z
    .strictObject({
      contactPoints: stringList(z.string().min(1)).default(['127.0.0.1:9042']),
      localDataCenter: z.string().min(1).default('datacenter1'),
      keyspace: z
        .string()
        .regex(/^[a-z_][a-z0-9_]{0,47}$/)
        .default('fleetstream'),
      replicationFactor: z.number().int().min(1).default(1),
      username: z.string().optional(),
      password: z.string().optional(),
      ttlSeconds: z.number().int().min(1).optional(),
      concurrency: z.number().int().min(1).max(1024).default(64),
    })
    .prefault({}),
})

/** Configuration of a sink process. */
export const sinksRoleConfig = coreConfig.extend({ sinks: sinksConfig.prefault({}) })
/** The validated configuration of a sink process. */
export type SinksRoleConfig = z.infer<typeof sinksRoleConfig>
