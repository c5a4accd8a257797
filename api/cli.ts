import path from 'node:path'
import type { Command } from 'commander'
import { Pool } from 'pg'
import { crateDialect, postgresDialect, sqliteDialect } from '../consumers/sinks/sql/dialect'
import { openSqlite, sqliteExecutor } from '../consumers/sinks/sqlite'
import { crateExecutor } from '../consumers/sinks/cratedb'
import { postgresExecutor } from '../consumers/sinks/postgres'
import { loadConfig } from '../core/config/load'
import { KafkaEventLog } from '../core/kafka/kafkajs-log'
import { createLogger } from '../core/logging/logger'
import { cassandraReadStore } from './cassandra-store'
import { apiRoleConfig, type ApiRoleConfig } from './config'
import { ApiKeyStore, SCOPES, type Scope } from './keys'
import { sqlReadStore } from './sql-store'
import { startApi } from './start'
import type { ReadStore } from './store'

/** The read side of the configured store (`api.store`, connection from `sinks.<store>`). */
export function readStoreFor(cfg: ApiRoleConfig): ReadStore {
  const s = cfg.sinks
  switch (cfg.api.store) {
    case 'postgres':
      return sqlReadStore(
        'postgres',
        postgresDialect,
        postgresExecutor(
          new Pool({
            connectionString: s.postgres.url,
            max: 8,
            options: `-c search_path=${s.postgres.schema}`,
          }),
        ),
      )
    case 'cratedb':
      return sqlReadStore('cratedb', crateDialect, crateExecutor(s.cratedb))
    case 'sqlite':
      return sqlReadStore('sqlite', sqliteDialect, sqliteExecutor(openSqlite(s.sqlite.file)))
    case 'cassandra':
      return cassandraReadStore({
        client: {
          contactPoints: s.cassandra.contactPoints,
          localDataCenter: s.cassandra.localDataCenter,
          ...(s.cassandra.username
            ? { credentials: { username: s.cassandra.username, password: s.cassandra.password ?? '' } }
            : {}),
        },
        keyspace: s.cassandra.keyspace,
      })
  }
}

const configOf = (opts: { config?: string }) =>
  loadConfig(apiRoleConfig, { file: opts.config ?? process.env.FLEETSTREAM_CONFIG, env: process.env })

/** Adds `fleetstream api` and `fleetstream apikeys add|list|revoke`. */
export function registerApiCommands(program: Command): void {
  program
    .command('api')
    .description('the query API: devices, series, rollups, alerts, rules; OpenAPI at /openapi.json')
    .option('-c, --config <file>', 'YAML configuration file')
    .action(async (opts: { config?: string }) => {
      const cfg = configOf(opts)
      const logger = createLogger(cfg.log)
      const store = readStoreFor(cfg)
      const log = new KafkaEventLog(cfg.kafka, logger)
      const api = await startApi(cfg, { log, store, logger })
      process.stdout.write(
        `${JSON.stringify({ event: 'running', role: 'api', store: store.name, port: api.port })}\n`,
      )
      const stop = async () => {
        await api.close()
        await log.close()
        await store.close()
        process.exit(0)
      }
      process.once('SIGTERM', () => void stop())
      process.once('SIGINT', () => void stop())
    })

  const keys = program.command('apikeys').description('API keys of the query API (stored hashed)')
  const keyStore = (opts: { config?: string }) => new ApiKeyStore(path.resolve(configOf(opts).api.keysFile))
  keys
    .command('add <name>')
    .description(`make a key (shown once); scopes: ${SCOPES.join(', ')}`)
    .option('-s, --scopes <list>', 'comma-separated scopes', 'read')
    .option('-c, --config <file>', 'YAML configuration file')
    .action((name: string, opts: { scopes: string; config?: string }) => {
      const scopes = opts.scopes.split(',').map((s) => s.trim()) as Scope[]
      process.stdout.write(`${JSON.stringify(keyStore(opts).add(name, scopes))}\n`)
    })
  keys
    .command('list')
    .option('-c, --config <file>', 'YAML configuration file')
    .action((opts: { config?: string }) => {
      process.stdout.write(`${JSON.stringify(keyStore(opts).list())}\n`)
    })
  keys
    .command('revoke <id>')
    .option('-c, --config <file>', 'YAML configuration file')
    .action((id: string, opts: { config?: string }) => {
      const revoked = keyStore(opts).revoke(id)
      process.stdout.write(`${JSON.stringify({ id, revoked })}\n`)
      if (!revoked) process.exitCode = 1
    })
}
