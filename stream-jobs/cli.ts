import type { Command } from 'commander'
import { loadConfig } from '../core/config/load'
import { ConfigError } from '../core/errors'
import { KafkaEventLog } from '../core/kafka/kafkajs-log'
import { createLogger } from '../core/logging/logger'
import { jobsRoleConfig } from './config'
import { jobRegistry } from './registry'
import { runJob } from './runtime/runner'

/** Adds `fleetstream job <name>`. */
export function registerJobCommands(program: Command): void {
  program
    .command('job <name>')
    .description(`run a stream job: ${jobRegistry.map((j) => `${j.name} (${j.description})`).join('; ')}`)
    .option('-c, --config <file>', 'YAML configuration file')
    .action(async (name: string, opts: { config?: string }) => {
      const entry = jobRegistry.find((j) => j.name === name)
      if (!entry) {
        throw new ConfigError(`unknown job "${name}"; known: ${jobRegistry.map((j) => j.name).join(', ')}`, [
          { key: 'job', source: 'command line', message: `unknown job ${name}` },
        ])
      }
      const cfg = loadConfig(jobsRoleConfig, {
        file: opts.config ?? process.env.FLEETSTREAM_CONFIG,
        env: process.env,
      })
      const logger = createLogger(cfg.log)
      const log = new KafkaEventLog(cfg.kafka, logger)
      const running = await runJob(await entry.build(cfg), log, {
        groupId: `${cfg.jobs.applicationId}-${name}`,
        instanceId: cfg.jobs.instanceId,
        changelogTopic: `${cfg.jobs.applicationId}-${name}-changelog`,
        tickMs: cfg.jobs.tickMs,
        logger,
      })
      process.stdout.write(
        `${JSON.stringify({ event: 'running', job: name, instanceId: cfg.jobs.instanceId })}\n`,
      )
      let stopping = false
      const stop = () => {
        if (stopping) return
        stopping = true
        // Drain: finish the transaction under way, leave the group, then exit.
        running.close().then(
          () => log.close().then(() => process.exit(0)),
          () => process.exit(1),
        )
      }
      process.once('SIGTERM', stop)
      process.once('SIGINT', stop)
    })
}
