import type { AvroCodec } from '../../core/envelope/codec'
import type { Telemetry } from '../../core/envelope/telemetry'
import type { EventLog, InRecord, OutRecord } from '../../core/kafka/log'
import type { Logger } from '../../core/logging/logger'
import { backoffMs, type RetryPolicy } from '../alerts/deliver'
import { SinkWriteError, type Sink } from './sink'

/** Settings of one running sink. */
export interface SinkRunOptions {
  groupId: string
  topic: string
  deadletterTopic: string
  telemetry: AvroCodec<Telemetry>
  retry: RetryPolicy
  logger: Logger
  /** Called for each batch written (rows) and each record dead-lettered, for metrics. */
  onWritten?: (rows: number) => void
  onDeadLetter?: (reason: string) => void
  sleep?: (ms: number) => Promise<void>
}

/**
 * Runs a sink as a consumer group of its own: each consumed batch is decoded and written, and
 * its offsets are committed only after the database accepted it (a crash rewrites, which the
 * idempotent writes absorb). Transient errors are retried with backoff; a batch the database
 * keeps refusing is split in halves until the record it refuses is found, and that record goes
 * to the dead-letter topic with the database's error while the rest is written.
 */
export async function runSink(
  log: EventLog,
  sink: Sink,
  o: SinkRunOptions,
): Promise<{ close(): Promise<void> }> {
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)))
  const logger = o.logger.child({ component: `sinks.${sink.name}` })
  await sink.connect()
  const producer = await log.producer()
  const deadLetter = async (r: InRecord, code: string, reason: string) => {
    const rec: OutRecord = {
      topic: o.deadletterTopic,
      key: r.key,
      value: r.value,
      headers: {
        'fs-reason-code': code,
        'fs-reason': reason.slice(0, 1000),
        'fs-source': `sink:${sink.name}:${r.topic}/${r.partition}/${r.offset}`,
      },
    }
    await producer.send([rec])
    o.onDeadLetter?.(code)
  }

  /** Writes with retries; returns the error that retries could not clear (null when written). */
  const write = async (rows: Telemetry[]): Promise<SinkWriteError | null> => {
    for (let attempt = 1; ; attempt++) {
      try {
        await sink.writeBatch(rows)
        o.onWritten?.(rows.length)
        return null
      } catch (err) {
        const e = err instanceof SinkWriteError ? err : new SinkWriteError((err as Error).message, true, err)
        if (!e.retriable) return e
        if (attempt >= o.retry.maxAttempts) return e
        logger.warn('sink write failed; retrying', { attempt, rows: rows.length, error: e.message })
        await sleep(backoffMs(o.retry, attempt))
      }
    }
  }

  /** Writes `items`; when the database refuses the batch, halves it to find the records it refuses. */
  const writeSplitting = async (items: { r: InRecord; t: Telemetry }[]): Promise<void> => {
    const err = await write(items.map((x) => x.t))
    if (!err) return
    if (items.length === 1) {
      await deadLetter(items[0]!.r, 'FS_SINK_WRITE', err.message)
      return
    }
    if (err.retriable) throw err // the database is unreachable: stop here, the batch comes again
    const mid = Math.floor(items.length / 2)
    await writeSplitting(items.slice(0, mid))
    await writeSplitting(items.slice(mid))
  }

  const consumer = await log.consumer({
    groupId: o.groupId,
    topics: [o.topic],
    fromBeginning: true,
    readCommitted: true,
  })
  await consumer.run(async (batch, ctx) => {
    const items: { r: InRecord; t: Telemetry }[] = []
    for (const r of batch.records) {
      try {
        items.push({ r, t: await o.telemetry.decode(r.value ?? Buffer.alloc(0)) })
      } catch (err) {
        await deadLetter(r, 'FS_SINK_DECODE', (err as Error).message)
      }
    }
    await writeSplitting(items)
    const last = batch.records[batch.records.length - 1]!
    await ctx.commit([
      { topic: batch.topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() },
    ])
  })
  logger.info('sink started', { groupId: o.groupId, topic: o.topic })
  return {
    close: async () => {
      await consumer.close()
      await producer.close()
      await sink.close()
    },
  }
}
