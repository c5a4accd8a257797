import type { Command } from 'commander'
import { loadConfig } from '../../core/config/load'
import { ConfigError } from '../../core/errors'
import { createSchemaRegistry, createTelemetryCodec } from '../../core/envelope/telemetry'
import { KafkaEventLog } from '../../core/kafka/kafkajs-log'
import { createLogger } from '../../core/logging/logger'
import { cassandraSink } from './cassandra'
import { sinksRoleConfig, type SinksRoleConfig } from './config'
import { postgresSink } from './postgres'
import { runSink } from './runtime'
import type { Sink } from './sink'

const STORES = ['postgres', 'cassandra'] as const

function sinkFor(store: string, cfg: SinksRoleConfig): Sink {
  const s = cfg.sinks
  if (store === 'postgres') return postgresSink({ connectionString: s.postgres.url, table: s.postgres.table })
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
      `store telemetry from Kafka in ${STORES.join(' or ')} (idempotent; commits after each write)`,
    )
    .option('-c, --config <file>', 'YAML configuration file')
    .action(async (store: string, opts: { config?: string }) => {
      const cfg = configOf(opts)
      const sink = sinkFor(store, cfg)
      const logger = createLogger(cfg.log)
      const log = new KafkaEventLog(cfg.kafka, logger)
      const running = await runSink(log, sink, {
        groupId: `${cfg.sinks.applicationId}-sink-${store}`,
        topic: cfg.sinks.input === 'raw' ? cfg.topics.raw : cfg.topics.enriched,
        deadletterTopic: cfg.topics.deadletter,
        telemetry: await createTelemetryCodec(createSchemaRegistry(cfg.schemaRegistry)),
        retry: cfg.sinks.retry,
        logger,
      })
      process.stdout.write(`${JSON.stringify({ event: 'running', role: 'sink', store })}\n`)
      const stop = () =>
        running.close().then(
          () => log.close().then(() => process.exit(0)),
          () => process.exit(1),
        )
      process.once('SIGTERM', stop)
      process.once('SIGINT', stop)
    })
}
