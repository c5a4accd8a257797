import type { Command } from 'commander'
import { loadConfig } from '../../core/config/load'
import { ConfigError } from '../../core/errors'
import { AvroCodec } from '../../core/envelope/codec'
import { createSchemaRegistry } from '../../core/envelope/telemetry'
import { startOpsServer } from '../../core/http/ops'
import { KafkaEventLog } from '../../core/kafka/kafkajs-log'
import { createLogger } from '../../core/logging/logger'
import type { SchemaRegistry } from '../../core/envelope/registry'
import { cassandraSink } from './cassandra'
import { sinksRoleConfig, type SinksRoleConfig } from './config'
import { crateSink } from './cratedb'
import { SinkMetrics } from './metrics'
import { postgresSink } from './postgres'
import { runSink, type SinkCodecs, type SinkKind } from './runtime'
import { sqliteSink } from './sqlite'
import type { Sink } from './sink'

export const STORES = ['postgres', 'cassandra', 'cratedb', 'sqlite'] as const

/** The sink of a store, as configured (`sinks.<store>`). */
export function sinkFor(store: string, cfg: SinksRoleConfig): Sink {
  const s = cfg.sinks
  if (store === 'postgres')
    return postgresSink({ connectionString: s.postgres.url, schema: s.postgres.schema })
  if (store === 'cratedb') return crateSink(s.cratedb)
  if (store === 'sqlite') return sqliteSink(s.sqlite)
  if (store === 'cassandra') {
    const c = s.cassandra
    return cassandraSink({
      client: {
        contactPoints: c.contactPoints,
        localDataCenter: c.localDataCenter,
        ...(c.username ? { credentials: { username: c.username, password: c.password ?? '' } } : {}),
      },
      keyspace: c.keyspace,
      replicationFactor: c.replicationFactor,
      ttlSeconds: c.ttlSeconds,
      concurrency: c.concurrency,
    })
  }
  throw new ConfigError(`unknown store "${store}"; known: ${STORES.join(', ')}`, [
    { key: 'store', source: 'command line', message: `unknown store ${store}` },
  ])
}

/** Batches a sink writes at once: SQLite's own setting (it commits them together), else `sinks.concurrency`. */
export function sinkConcurrency(store: string, cfg: SinksRoleConfig): number {
  return store === 'sqlite' ? cfg.sinks.sqlite.concurrency : cfg.sinks.concurrency
}

/** The topics a sink reads, from `sinks.store` and `sinks.input`. */
export function sinkInputs(cfg: SinksRoleConfig): { topic: string; kind: SinkKind }[] {
  const t = cfg.topics
  const of: Record<SinkKind, string[]> = {
    telemetry: [cfg.sinks.input === 'raw' ? t.raw : t.enriched],
    rollups: [t.rollups1m, t.rollups1h],
    alerts: [t.alerts],
    devices: [t.devices],
  }
  return [...new Set(cfg.sinks.store)].flatMap((kind) => of[kind].map((topic) => ({ topic, kind })))
}

/** The codecs of every record kind the sinks store. */
export async function sinkCodecs(registry: SchemaRegistry): Promise<SinkCodecs> {
  return {
    telemetry: await AvroCodec.bundled(registry, 'telemetry.avsc'),
    rollup: await AvroCodec.bundled(registry, 'rollup.avsc'),
    alert: await AvroCodec.bundled(registry, 'alert.avsc'),
    device: await AvroCodec.bundled(registry, 'device.avsc'),
  }
}

const configOf = (opts: { config?: string }) =>
  loadConfig(sinksRoleConfig, { file: opts.config ?? process.env.FLEETSTREAM_CONFIG, env: process.env })

/** Adds `fleetstream sink <store>` and `fleetstream migrate <store>`. */
export function registerSinkCommands(program: Command): void {
  program
    .command('migrate <store>')
    .description(`create or alter a store's tables (${STORES.join(', ')}); sinks also do it on start`)
    .option('-c, --config <file>', 'YAML configuration file')
    .action(async (store: string, opts: { config?: string }) => {
      const sink = sinkFor(store, configOf(opts))
      await sink.connect()
      await sink.close()
      process.stdout.write(`${JSON.stringify({ migrated: store })}\n`)
    })
  program
    .command('sink <store>')
    .description(
      `store telemetry, rollups, alerts and devices from Kafka in ${STORES.join(', ')} (idempotent; commits after each write)`,
    )
    .option('-c, --config <file>', 'YAML configuration file')
    .action(async (store: string, opts: { config?: string }) => {
      const cfg = configOf(opts)
      const sink = sinkFor(store, cfg)
      const logger = createLogger(cfg.log)
      const log = new KafkaEventLog(cfg.kafka, logger)
      const metrics = new SinkMetrics({ processMetrics: true })
      let ready = false
      const ops = await startOpsServer({
        ...cfg.sinks.metrics,
        registry: metrics.registry,
        ready: () => ready,
        logger,
      })
      const running = await runSink(log, sink, {
        groupId: `${cfg.sinks.applicationId}-sink-${store}`,
        inputs: sinkInputs(cfg),
        deadletterTopic: cfg.topics.deadletter,
        codecs: await sinkCodecs(createSchemaRegistry(cfg.schemaRegistry)),
        retry: cfg.sinks.retry,
        logger,
        metrics,
        concurrency: sinkConcurrency(store, cfg),
      })
      ready = true
      process.stdout.write(
        `${JSON.stringify({ event: 'running', role: 'sink', store, metricsPort: ops.port })}\n`,
      )
      const stop = () =>
        running.close().then(
          () => Promise.all([log.close(), ops.close()]).then(() => process.exit(0)),
          () => process.exit(1),
        )
      process.once('SIGTERM', stop)
      process.once('SIGINT', stop)
    })
}
