import type { Command } from 'commander'
import { loadConfig } from '../core/config/load'
import { ConfigError } from '../core/errors'
import { startOpsServer } from '../core/http/ops'
import { KafkaEventLog } from '../core/kafka/kafkajs-log'
import { createLogger } from '../core/logging/logger'
import { jobsRoleConfig } from './config'
import { jobRegistry, startRegisteredJob } from './registry'
import { JobMetrics } from './runtime/metrics'

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
      const metrics = new JobMetrics({ processMetrics: true })
      let ready = false
      const ops = await startOpsServer({
        ...cfg.jobs.metrics,
        registry: metrics.registry,
        ready: () => ready,
        logger,
      })
      const running = await startRegisteredJob(entry, cfg, {
        log,
        logger,
        metrics,
        // Exit non-zero: a supervisor restarts the job, which resumes from its last transaction.
        onFatal: () => process.exit(1),
      })
      ready = true
      process.stdout.write(
        `${JSON.stringify({ event: 'running', job: name, instanceId: cfg.jobs.instanceId, metricsPort: ops.port })}\n`,
      )
      let stopping = false
      const stop = () => {
        if (stopping) return
        stopping = true
        // Drain: finish the transaction under way, leave the group, then exit.
        ready = false
        running.close().then(
          () => Promise.all([log.close(), ops.close()]).then(() => process.exit(0)),
          () => process.exit(1),
        )
      }
      process.once('SIGTERM', stop)
      process.once('SIGINT', stop)
    })
}
