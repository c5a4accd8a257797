import type { Command } from 'commander'
import { loadConfig } from '../core/config/load'
import { createLogger } from '../core/logging/logger'
import { upRoleConfig } from './config'
import { startUp } from './up'

/** Adds `fleetstream up`. */
export function registerUpCommands(program: Command): void {
  program
    .command('up')
    .description('the whole pipeline in one process: embedded log and SQLite store unless --kafka / --store')
    .option('-c, --config <file>', 'YAML configuration file')
    .option('--kafka <brokers>', 'use this Kafka (host:port,…) instead of the embedded log')
    .option(
      '--store <store>',
      'sqlite (default), postgres, cassandra or cratedb (connection from sinks.<store>)',
    )
    .option('--data <dir>', 'where the embedded log, store, credentials and keys live', undefined)
    .action(async (opts: { config?: string; kafka?: string; store?: string; data?: string }) => {
      const env: NodeJS.ProcessEnv = { ...process.env }
      if (opts.kafka)
        Object.assign(env, { FLEETSTREAM_UP__KAFKA: 'true', FLEETSTREAM_KAFKA__BROKERS: opts.kafka })
      if (opts.store) env.FLEETSTREAM_UP__STORE = opts.store
      if (opts.data) env.FLEETSTREAM_UP__DATA_DIR = opts.data
      // A newcomer's terminal shows the banner and warnings; set log.level for more.
      if (!env.FLEETSTREAM_LOG__LEVEL && !opts.config && !env.FLEETSTREAM_CONFIG)
        env.FLEETSTREAM_LOG__LEVEL = 'warn'
      const cfg = loadConfig(upRoleConfig, { file: opts.config ?? process.env.FLEETSTREAM_CONFIG, env })
      const logger = createLogger(cfg.log)
      const up = await startUp(cfg, logger)
      const l = up.listening
      process.stdout.write(
        [
          '',
          `fleetstream is up (${cfg.up.kafka ? `Kafka ${cfg.kafka.brokers.join(',')}` : `embedded log in ${cfg.up.dataDir}/log`}, ${cfg.up.store} store)`,
          `  MQTT       mqtt://127.0.0.1:${l.mqtt}      topic devices/<deviceId>/telemetry`,
          `  HTTP       http://127.0.0.1:${l.http}/v1/telemetry`,
          `  dashboard  http://127.0.0.1:${l.api}/#key=${up.demo.apiKey}`,
          `  API        http://127.0.0.1:${l.api}/openapi.json`,
          `  metrics    ${l.metrics}`,
          `  demo device  ${up.demo.deviceId}  token ${up.demo.token}`,
          `  API key      ${up.demo.apiKey}`,
          '',
          `  try: curl -u ${up.demo.deviceId}:${up.demo.token} -H 'content-type: application/json' -d '{"temperature":21.5}' http://127.0.0.1:${l.http}/v1/telemetry`,
          `       curl -H 'Authorization: Bearer ${up.demo.apiKey}' 'http://127.0.0.1:${l.api}/fetch/${up.demo.deviceId}'`,
          '',
        ].join('\n'),
      )
      process.stdout.write(`${JSON.stringify({ event: 'running', role: 'up', ...l })}\n`)
      let stopping = false
      const stop = () => {
        if (stopping) return
        stopping = true
        up.close().then(
          () => process.exit(0),
          () => process.exit(1),
        )
      }
      process.once('SIGTERM', stop)
      process.once('SIGINT', stop)
    })
}
