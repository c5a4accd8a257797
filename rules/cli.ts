import type { Command } from 'commander'
import { loadConfig } from '../core/config/load'
import { ConfigError } from '../core/errors'
import { coreConfig, type CoreConfig } from '../core/config/schema'
import { AvroCodec } from '../core/envelope/codec'
import { KafkaEventLog } from '../core/kafka/kafkajs-log'
import { createLogger } from '../core/logging/logger'
import type { Alert, Device, RuleDefinition } from '../schemas/types.generated'
import { createSchemaRegistry, createTelemetryCodec } from '../core/envelope/telemetry'
import type { InRecord } from '../core/kafka/log'
import { backtest } from '../stream-jobs/jobs/rules-backtest'
import { loadRuleFiles } from './loader'
import { publishRules } from './publish'
import { RuleTable } from './table'

const configOf = (opts: { config?: string }): CoreConfig =>
  loadConfig(coreConfig, { file: opts.config ?? process.env.FLEETSTREAM_CONFIG, env: process.env })

async function definitionCodec(cfg: CoreConfig): Promise<AvroCodec<RuleDefinition>> {
  return AvroCodec.bundled<RuleDefinition>(createSchemaRegistry(cfg.schemaRegistry), 'rule-definition.avsc')
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
        await publishRules(log, { codec, topic: cfg.topics.rules, rules: loaded, source: target })
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
  rules
    .command('backtest <path>')
    .description(
      'run rule files over the enriched readings in Kafka (with the device registry) and print the alert events they would give, one JSON per line; writes nothing',
    )
    .option('--from <time>', 'only readings at or after this event time (ISO 8601 or ms)')
    .option('--to <time>', 'only readings before this event time (ISO 8601 or ms)')
    .option('-c, --config <file>', 'YAML configuration file')
    .action(async (target: string, opts: { config?: string; from?: string; to?: string }) => {
      const rulesToRun = loadRuleFiles(target)
      const when = (v: string | undefined, name: string) => {
        if (v === undefined) return undefined
        const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v)
        if (Number.isNaN(ms))
          throw new ConfigError(`--${name}: not a time: ${v}`, [
            { key: name, source: 'command line', message: 'not a time' },
          ])
        return ms
      }
      const from = when(opts.from, 'from')
      const to = when(opts.to, 'to')
      const cfg = configOf(opts)
      const registry = createSchemaRegistry(cfg.schemaRegistry)
      const log = new KafkaEventLog(cfg.kafka, createLogger(cfg.log))
      const devices: InRecord[] = []
      const readings: InRecord[] = []
      try {
        const admin = await log.admin()
        const existing = new Set(await admin.listTopics().finally(() => admin.close()))
        for (const t of [cfg.topics.devices, cfg.topics.enriched])
          if (!existing.has(t))
            throw new ConfigError(`topic ${t} does not exist`, [
              { key: 'topics', source: 'Kafka', message: `no topic ${t}` },
            ])
        await log.readTopic(cfg.topics.devices, (r) => devices.push(r))
        await log.readTopic(cfg.topics.enriched, (r) => readings.push(r))
      } finally {
        await log.close()
      }
      const events = await backtest(devices, readings, {
        rules: rulesToRun,
        from,
        to,
        telemetry: await createTelemetryCodec(registry),
        device: await AvroCodec.bundled<Device>(registry, 'device.avsc'),
        alert: await AvroCodec.bundled<Alert>(registry, 'alert.avsc'),
      })
      for (const e of events.sort((a, b) => a.ts - b.ts)) process.stdout.write(`${JSON.stringify(e)}\n`)
      process.stderr.write(
        `${JSON.stringify({ readings: readings.length, raised: events.filter((e) => e.event === 'raised').length, cleared: events.filter((e) => e.event === 'cleared').length })}\n`,
      )
    })
}
