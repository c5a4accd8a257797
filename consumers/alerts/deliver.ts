import type { AvroCodec } from '../../core/envelope/codec'
import type { EventLog, OutRecord } from '../../core/kafka/log'
import type { Logger } from '../../core/logging/logger'
import type { Alert } from '../../schemas/types.generated'
import type { AlertMetrics } from './metrics'

/** One way of telling someone about an alert event (a webhook, an MQTT downlink, a log line). */
export interface AlertSink {
  name: string
  /** Delivers one event; throws DeliveryError (retriable or not) when it could not. */
  deliver(alert: Alert): Promise<void>
  close(): Promise<void>
}

/** A failed delivery: `retriable` false means retrying cannot help (the receiver refused it). */
export class DeliveryError extends Error {
  constructor(
    message: string,
    readonly retriable: boolean,
  ) {
    super(message)
  }
}

/** Retry policy of a sink. */
export interface RetryPolicy {
  maxAttempts: number
  initialBackoffMs: number
  maxBackoffMs: number
}

/** Settings of one running alert consumer. */
export interface AlertConsumerOptions {
  groupId: string
  alertsTopic: string
  deadletterTopic: string
  retry: RetryPolicy
  codec: AvroCodec<Alert>
  metrics: AlertMetrics
  logger: Logger
  /** Waits between attempts (replaceable so tests of the policy need not sleep). */
  sleep?: (ms: number) => Promise<void>
}

/** The backoff before attempt `n + 1` (after n failures): exponential, capped, with ±20% jitter. */
export function backoffMs(p: RetryPolicy, failures: number, random = Math.random): number {
  const base = Math.min(p.maxBackoffMs, p.initialBackoffMs * 2 ** (failures - 1))
  return Math.round(base * (0.8 + 0.4 * random()))
}

/**
 * Runs one sink as a consumer group of its own on the alerts topic: each event is delivered
 * (with retries and backoff) before its offset is committed, so a crash redelivers rather than
 * loses (receivers dedupe on the event id); after the last attempt the event goes to the
 * dead-letter topic with its reason and the consumer moves on. A slow sink only slows its own group.
 */
export async function runAlertConsumer(
  log: EventLog,
  sink: AlertSink,
  o: AlertConsumerOptions,
): Promise<{ close(): Promise<void> }> {
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)))
  const logger = o.logger.child({ component: `alerts.${sink.name}` })
  const producer = await log.producer()
  const consumer = await log.consumer({
    groupId: o.groupId,
    topics: [o.alertsTopic],
    fromBeginning: true,
    readCommitted: true,
  })
  let closing = false
  await consumer.run(async (batch, ctx) => {
    for (const r of batch.records) {
      if (closing) return
      let alert: Alert | undefined
      let reason = ''
      try {
        alert = await o.codec.decode(r.value ?? Buffer.alloc(0))
      } catch (err) {
        reason = `undecodable alert: ${(err as Error).message}`
      }
      for (let attempt = 1; alert && !closing; attempt++) {
        o.metrics.attempts.inc({ sink: sink.name })
        try {
          await sink.deliver(alert)
          o.metrics.delivered.inc({ sink: sink.name })
          reason = ''
          break
        } catch (err) {
          const e = err as Error
          const retriable = !(err instanceof DeliveryError) || err.retriable
          o.metrics.failures.inc({ sink: sink.name })
          reason = `${sink.name} delivery failed after ${attempt} attempt(s): ${e.message}`
          logger.warn('alert delivery failed', {
            alertId: alert.alertId,
            attempt,
            retriable,
            error: e.message,
          })
          if (!retriable || attempt >= o.retry.maxAttempts) break
          await ctx.heartbeat()
          await sleep(backoffMs(o.retry, attempt))
        }
      }
      if (closing) return
      if (reason) {
        const dead: OutRecord = {
          topic: o.deadletterTopic,
          key: r.key,
          value: r.value,
          headers: {
            'fs-reason-code': 'FS_ALERTS_DELIVERY',
            'fs-reason': reason.slice(0, 1000),
            'fs-source': `alerts:${sink.name}:${r.topic}/${r.partition}/${r.offset}`,
          },
        }
        await producer.send([dead])
        o.metrics.deadLettered.inc({ sink: sink.name })
      }
      // Delivered (or dead-lettered): only now is the event done for this group.
      await ctx.commit([
        { topic: r.topic, partition: r.partition, offset: (BigInt(r.offset) + 1n).toString() },
      ])
    }
  })
  logger.info('alert consumer started', { groupId: o.groupId })
  return {
    close: async () => {
      closing = true
      await consumer.close()
      await producer.close()
      await sink.close()
    },
  }
}
