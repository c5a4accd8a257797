import type { Command } from 'commander'
import { loadConfig } from '../../core/config/load'
import { AvroCodec } from '../../core/envelope/codec'
import { createSchemaRegistry } from '../../core/envelope/telemetry'
import { startOpsServer } from '../../core/http/ops'
import { KafkaEventLog } from '../../core/kafka/kafkajs-log'
import { createLogger } from '../../core/logging/logger'
import type { Alert } from '../../schemas/types.generated'
import { alertsRoleConfig } from './config'
import { runAlertConsumer, type AlertSink, type RetryPolicy } from './deliver'
import { logSink } from './log-sink'
import { AlertMetrics } from './metrics'
import { mqttDownlinkSink } from './mqtt-downlink'
import { webhookSink } from './webhook'

/** Adds `fleetstream alerts`: the configured alert consumers, each a consumer group of its own. */
export function registerAlertCommands(program: Command): void {
  program
    .command('alerts')
    .description('deliver alert events from iot.alerts: webhook (signed, retried), MQTT downlink, log')
    .option('-c, --config <file>', 'YAML configuration file')
    .action(async (opts: { config?: string }) => {
      const cfg = loadConfig(alertsRoleConfig, {
        file: opts.config ?? process.env.FLEETSTREAM_CONFIG,
        env: process.env,
      })
      const logger = createLogger(cfg.log)
      const log = new KafkaEventLog(cfg.kafka, logger)
      const metrics = new AlertMetrics({ processMetrics: true })
      const codec = await AvroCodec.bundled<Alert>(createSchemaRegistry(cfg.schemaRegistry), 'alert.avsc')
      const a = cfg.alerts
      const sinks: { sink: AlertSink; retry: RetryPolicy }[] = []
      if (a.webhook) sinks.push({ sink: webhookSink(a.webhook), retry: a.webhook })
      if (a.mqtt) sinks.push({ sink: await mqttDownlinkSink(a.mqtt), retry: a.mqtt })
      if (a.log.enabled)
        sinks.push({ sink: logSink(logger), retry: { maxAttempts: 1, initialBackoffMs: 1, maxBackoffMs: 1 } })
      let ready = false
      const ops = await startOpsServer({
        ...a.metrics,
        registry: metrics.registry,
        ready: () => ready,
        logger,
      })
      const running = await Promise.all(
        sinks.map(({ sink, retry }) =>
          runAlertConsumer(log, sink, {
            groupId: `${a.applicationId}-alerts-${sink.name}`,
            alertsTopic: cfg.topics.alerts,
            deadletterTopic: cfg.topics.deadletter,
            retry,
            codec,
            metrics,
            logger,
          }),
        ),
      )
      ready = true
      process.stdout.write(
        `${JSON.stringify({ event: 'running', role: 'alerts', sinks: sinks.map((s) => s.sink.name), metricsPort: ops.port })}\n`,
      )
      const stop = () => {
        ready = false
        Promise.all(running.map((r) => r.close()))
          .then(() => Promise.all([log.close(), ops.close()]))
          .then(
            () => process.exit(0),
            () => process.exit(1),
          )
      }
      process.once('SIGTERM', stop)
      process.once('SIGINT', stop)
    })
}
