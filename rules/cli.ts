import type { Command } from 'commander'
import { loadConfig } from '../core/config/load'
import { coreConfig, type CoreConfig } from '../core/config/schema'
import { AvroCodec } from '../core/envelope/codec'
import { loadBundledSchema } from '../core/envelope/registry'
import { createSchemaRegistry } from '../core/envelope/telemetry'
import { KafkaEventLog } from '../core/kafka/kafkajs-log'
import { createLogger } from '../core/logging/logger'
import type { RuleDefinition } from '../schemas/types.generated'
import { loadRuleFiles } from './loader'
import { RuleTable } from './table'

const configOf = (opts: { config?: string }): CoreConfig =>
  loadConfig(coreConfig, { file: opts.config ?? process.env.FLEETSTREAM_CONFIG, env: process.env })

async function definitionCodec(cfg: CoreConfig): Promise<AvroCodec<RuleDefinition>> {
  return AvroCodec.create<RuleDefinition>(
    createSchemaRegistry(cfg.schemaRegistry),
    'dev.fleetstream.RuleDefinition',
    loadBundledSchema('rule-definition.avsc'),
  )
}

/** Adds `fleetstream rules validate|publish|list`. */
export function registerRuleCommands(program: Command): void {
  const rules = program.command('rules').description('alert rules (YAML files, the iot.rules topic)')
  rules
    .command('validate <path>')
    .description('validate rule files (a file or a folder of *.yaml); exit 2 naming every problem')
    .action((target: string) => {
      const loaded = loadRuleFiles(target)
      process.stdout.write(
        `${JSON.stringify({ valid: loaded.length, rules: loaded.map((r) => r.rule.id) })}\n`,
      )
    })
  rules
    .command('publish <path>')
    .description(
      'validate rule files, then publish each rule to the compacted rules topic (running jobs pick it up)',
    )
    .option('-c, --config <file>', 'YAML configuration file')
    .action(async (target: string, opts: { config?: string }) => {
      const loaded = loadRuleFiles(target) // nothing is published unless every rule is valid
      const cfg = configOf(opts)
      const codec = await definitionCodec(cfg)
      const log = new KafkaEventLog(cfg.kafka, createLogger(cfg.log))
      try {
        const producer = await log.producer()
        try {
          await producer.send(
            loaded.map(({ rule }) => ({
              topic: cfg.topics.rules,
              key: rule.id,
              value: codec.encode({
                ruleId: rule.id,
                definition: JSON.stringify(rule),
                publishedAt: Date.now(),
                source: target,
              }),
            })),
          )
        } finally {
          await producer.close()
        }
      } finally {
        await log.close()
      }
      process.stdout.write(
        `${JSON.stringify({ published: loaded.map((r) => r.rule.id), topic: cfg.topics.rules })}\n`,
      )
    })
  rules
    .command('list')
    .description('the rules in force on the rules topic')
    .option('-c, --config <file>', 'YAML configuration file')
    .action(async (opts: { config?: string }) => {
      const cfg = configOf(opts)
      const logger = createLogger(cfg.log)
      const log = new KafkaEventLog(cfg.kafka, logger)
      const table = new RuleTable(await definitionCodec(cfg), logger)
      try {
        const f = await table.follow(
          log,
          cfg.topics.rules,
          `fleetstream-rules-list-${process.pid}-${Date.now()}`,
        )
        await f.close()
      } finally {
        await log.close()
      }
      for (const { rule } of table.list())
        process.stdout.write(
          `${JSON.stringify({ id: rule.id, kind: rule.kind, severity: rule.severity, enabled: rule.enabled })}\n`,
        )
    })
}
