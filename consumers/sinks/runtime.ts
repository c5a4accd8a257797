import type { AvroCodec } from '../../core/envelope/codec'
import { wireSchemaId } from '../../core/envelope/wire'
import type { EventLog, InRecord, OutRecord } from '../../core/kafka/log'
import type { Logger } from '../../core/logging/logger'
import type { Alert, Device, Rollup, Telemetry } from '../../schemas/types.generated'
import { backoffMs, type RetryPolicy } from '../alerts/deliver'
import type { SinkMetrics } from './metrics'
import { SinkWriteError, type DeviceChange, type Sink } from './sink'

/** What a topic holds, and so which of the sink's writes stores it. */
export type SinkKind = 'telemetry' | 'rollups' | 'alerts' | 'devices'

/** The codecs of the record kinds a sink may read. */
export interface SinkCodecs {
  telemetry: AvroCodec<Telemetry>
  rollup: AvroCodec<Rollup>
  alert: AvroCodec<Alert>
  device: AvroCodec<Device>
}

/** Settings of one running sink. */
export interface SinkRunOptions {
  groupId: string
  /** The topics to store and what each holds. */
  inputs: { topic: string; kind: SinkKind }[]
  deadletterTopic: string
  codecs: SinkCodecs
  retry: RetryPolicy
  logger: Logger
  metrics?: SinkMetrics
  /** Batches of different partitions written at once (each partition's stay in order). */
  concurrency?: number
  sleep?: (ms: number) => Promise<void>
}

interface Item {
  r: InRecord
  v: unknown
}

/** Decodes a record of a kind (a registry tombstone is a removal, not an error). */
async function decode(kind: SinkKind, c: SinkCodecs, r: InRecord): Promise<unknown> {
  const bytes = r.value ?? Buffer.alloc(0)
  switch (kind) {
    case 'telemetry':
      return c.telemetry.decode(bytes)
    case 'rollups':
      return c.rollup.decode(bytes)
    case 'alerts':
      return c.alert.decode(bytes)
    case 'devices': {
      if (r.value === null) {
        if (!r.key) throw new Error('a registry tombstone without a key')
        return { deviceId: r.key, device: null } satisfies DeviceChange
      }
      const device = await c.device.decode(bytes)
      return { deviceId: device.deviceId, device } satisfies DeviceChange
    }
  }
}

function writeOf(sink: Sink, kind: SinkKind): (vs: unknown[]) => Promise<void> {
  switch (kind) {
    case 'telemetry':
      return (vs) => sink.writeTelemetry(vs as Telemetry[])
    case 'rollups':
      return (vs) => sink.writeRollups(vs as Rollup[])
    case 'alerts':
      return (vs) => sink.writeAlerts(vs as Alert[])
    case 'devices':
      return (vs) => sink.writeDevices(vs as DeviceChange[])
  }
}

/**
 * Runs a sink as a consumer group of its own over its input topics: each consumed batch (a Kafka
 * fetch of one partition, bounded in bytes and wait time) is decoded and written in bulk, and its
 * offsets are committed only after the database accepted it (a crash rewrites, which the
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
  const kindOf = new Map(o.inputs.map((i) => [i.topic, i.kind]))
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
    o.metrics?.deadLettered.inc({ store: sink.name, reason: code })
    logger.warn('record dead-lettered', {
      code,
      reason: reason.slice(0, 200),
      topic: r.topic,
      offset: r.offset,
    })
  }

  /** Writes with retries; returns the error that retries could not clear (null when written). */
  const write = async (kind: SinkKind, items: Item[]): Promise<SinkWriteError | null> => {
    const w = writeOf(sink, kind)
    for (let attempt = 1; ; attempt++) {
      try {
        await w(items.map((x) => x.v))
        o.metrics?.rows.inc({ store: sink.name, kind }, items.length)
        return null
      } catch (err) {
        const e = err instanceof SinkWriteError ? err : new SinkWriteError((err as Error).message, true, err)
        o.metrics?.errors.inc({ store: sink.name, retriable: String(e.retriable) })
        if (!e.retriable || attempt >= o.retry.maxAttempts) return e
        logger.warn('sink write failed; retrying', { attempt, rows: items.length, error: e.message })
        await sleep(backoffMs(o.retry, attempt))
      }
    }
  }

  /** Writes `items`; when the database refuses the batch, halves it to find the records it refuses. */
  const writeSplitting = async (kind: SinkKind, items: Item[]): Promise<void> => {
    if (items.length === 0) return
    const err = await write(kind, items)
    if (!err) return
    if (items.length === 1) {
      await deadLetter(items[0]!.r, 'FS_SINK_WRITE', err.message)
      return
    }
    if (err.retriable) throw err // the database is unreachable: stop here, the batch comes again
    const mid = Math.floor(items.length / 2)
    await writeSplitting(kind, items.slice(0, mid))
    await writeSplitting(kind, items.slice(mid))
  }

  const consumer = await log.consumer({
    groupId: o.groupId,
    topics: o.inputs.map((i) => i.topic),
    fromBeginning: true,
    readCommitted: true,
    concurrency: o.concurrency ?? 1,
  })
  /**
   * The sink's fast paths for records still in Avro (telemetry: PostgreSQL straight into COPY,
   * SQLite read on its writer thread; rollups: SQLite), taken when every record is framed with
   * the current schema id of its kind; false when the general path must write the batch (a
   * record it cannot take, keys already stored, any error: the general path retries, splits and
   * dead-letters).
   */
  const fastPaths = new Map<SinkKind, { schemaId: number; write: (values: Buffer[]) => Promise<boolean> }>()
  if (sink.writeTelemetryAvro)
    fastPaths.set('telemetry', {
      schemaId: o.codecs.telemetry.schemaId,
      write: sink.writeTelemetryAvro.bind(sink),
    })
  if (sink.writeRollupsAvro)
    fastPaths.set('rollups', { schemaId: o.codecs.rollup.schemaId, write: sink.writeRollupsAvro.bind(sink) })
  const fast = async (kind: SinkKind, records: InRecord[]): Promise<boolean> => {
    const path = fastPaths.get(kind)
    if (!path) return false
    const values: Buffer[] = []
    for (const r of records) {
      if (wireSchemaId(r.value) !== path.schemaId) return false
      values.push(r.value!)
    }
    try {
      return await path.write(values)
    } catch (err) {
      logger.debug('fast write failed; writing through the general path', {
        kind,
        error: (err as Error).message,
      })
      return false
    }
  }

  await consumer.run(async (batch, ctx) => {
    const kind = kindOf.get(batch.topic)!
    const started = process.hrtime.bigint()
    if (await fast(kind, batch.records)) {
      o.metrics?.rows.inc({ store: sink.name, kind }, batch.records.length)
    } else {
      const items: Item[] = []
      for (const r of batch.records) {
        try {
          items.push({ r, v: await decode(kind, o.codecs, r) })
        } catch (err) {
          await deadLetter(r, 'FS_SINK_DECODE', (err as Error).message)
        }
      }
      await writeSplitting(kind, items)
    }
    o.metrics?.batchSeconds.observe(
      { store: sink.name, kind },
      Number(process.hrtime.bigint() - started) / 1e9,
    )
    const last = batch.records[batch.records.length - 1]!
    await ctx.commit([
      { topic: batch.topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() },
    ])
  })
  logger.info('sink started', { groupId: o.groupId, inputs: o.inputs })
  return {
    close: async () => {
      await consumer.close()
      await producer.close()
      await sink.close()
    },
  }
}
