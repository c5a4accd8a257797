import { Command } from 'commander'
import { registerApiCommands } from '../api/cli'
import { registerBridgeCommands } from '../bridge/cli'
import { registerUpCommands } from '../embedded/cli'
import { registerSimulateCommands } from '../simulator/cli'
import { registerReportCommands } from '../reports/cli'
import { registerAlertCommands } from '../consumers/alerts/cli'
import { registerSinkCommands } from '../consumers/sinks/cli'
import { registerRuleCommands } from '../rules/cli'
import { registerJobCommands } from '../stream-jobs/cli'
import { loadConfig } from '../core/config/load'
import { coreConfig, type CoreConfig } from '../core/config/schema'
import { FleetError } from '../core/errors'
import { KafkaEventLog } from '../core/kafka/kafkajs-log'
import type { LogAdmin } from '../core/kafka/log'
import { designTopics } from '../core/kafka/topics'
import { createLogger, redact } from '../core/logging/logger'

function configFrom(opts: { config?: string }): CoreConfig {
  return loadConfig(coreConfig, { file: opts.config ?? process.env.FLEETSTREAM_CONFIG, env: process.env })
}

/** Runs `fn` with a Kafka admin from the configuration, closing every connection afterwards. */
async function withAdmin(
  opts: { config?: string },
  fn: (admin: LogAdmin, cfg: CoreConfig) => Promise<void>,
): Promise<void> {
  const cfg = configFrom(opts)
  const log = new KafkaEventLog(cfg.kafka, createLogger(cfg.log))
  try {
    const admin = await log.admin()
    try {
      await fn(admin, cfg)
    } finally {
      await admin.close()
    }
  } finally {
    await log.close()
  }
}

/** Builds the `fleetstream` command tree. Roles add their subcommands as they arrive. */
export function buildCli(): Command {
  const program = new Command('fleetstream')
    .description('IoT stream processing on Apache Kafka')
    .showHelpAfterError()

  const config = program.command('config').description('configuration')
  config
    .command('check')
    .description(
      'validate the configuration (file + FLEETSTREAM_* environment) and print it, secrets redacted',
    )
    .option('-c, --config <file>', 'YAML configuration file')
    .action((opts: { config?: string }) => {
      process.stdout.write(`${JSON.stringify(redact(configFrom(opts)), null, 2)}\n`)
    })

  const topics = program.command('topics').description('Kafka topics of the design')
  topics
    .command('create')
    .description("create the design's topics that do not exist yet (compacted where the design says)")
    .option('-c, --config <file>', 'YAML configuration file')
    .action((opts: { config?: string }) =>
      withAdmin(opts, async (admin, cfg) => {
        const created = await admin.ensureTopics(designTopics(cfg.topics))
        process.stdout.write(`${JSON.stringify({ created })}\n`)
      }),
    )
  topics
    .command('list')
    .description('list topics on the configured Kafka')
    .option('-c, --config <file>', 'YAML configuration file')
    .action((opts: { config?: string }) =>
      withAdmin(opts, async (admin) => {
        for (const t of (await admin.listTopics()).sort()) process.stdout.write(`${t}\n`)
      }),
    )
  registerBridgeCommands(program)
  registerJobCommands(program)
  registerRuleCommands(program)
  registerAlertCommands(program)
  registerSinkCommands(program)
  registerApiCommands(program)
  registerUpCommands(program)
  registerSimulateCommands(program)
  registerReportCommands(program)
  return program
}

/** Runs the CLI; a FleetError prints its code and message and exits 2, any other error its message
 * and exits 1; never a stack trace (unless FLEETSTREAM_DEBUG is set). */
export async function main(argv: string[]): Promise<void> {
  try {
    await buildCli().parseAsync(argv)
  } catch (err) {
    if (err instanceof FleetError) {
      process.stderr.write(`fleetstream: ${err.code}: ${err.message}\n`)
      process.exitCode = 2
      return
    }
    // Not one of ours (a library's): its message, and the stack only when asked for.
    const e = err as Error
    process.stderr.write(`fleetstream: unexpected error: ${e.message}\n`)
    if (process.env.FLEETSTREAM_DEBUG) process.stderr.write(`${e.stack}\n`)
    process.exitCode = 1
  }
}
