import { createSchemaRegistry, createTelemetryCodec } from '../core/envelope/telemetry'
import { KafkaEventLog } from '../core/kafka/kafkajs-log'
import type { EventLog } from '../core/kafka/log'
import { threadedProducer } from '../core/kafka/producer-thread'
import { designTopics } from '../core/kafka/topics'
import { dataFlowTracer, type Logger } from '../core/logging/logger'
import { createDeviceStore } from './auth'
import type { BridgeRoleConfig } from './config'
import { IngestPipeline } from './ingest/pipeline'
import { DurableWriter } from './ingest/writer'
import { BridgeMetrics } from './metrics'
import { ingestAdapters, type RunningAdapter } from './registry'
import { compileTopicTemplate } from './topic-template'

/** A running bridge. */
export interface RunningBridge {
  /** Where each front end listens (ports), for logs and tests. */
  listening: Record<string, number | string | undefined>
  metrics: BridgeMetrics
  /** Drains and stops: stop accepting, finish every Kafka write (so its ack goes out), then disconnect. */
  close(): Promise<void>
}

/** The protocol-independent part of a bridge: the producer, the ordered writer and the pipeline. */
export interface IngestCore {
  pipeline: IngestPipeline
  writer: DurableWriter
  metrics: BridgeMetrics
  /** Writes what is buffered, then disconnects the producer (and the log, unless it was given). */
  close(): Promise<void>
}

/** How a process runs the bridge. */
export interface BridgeOptions {
  /** The event log to write to (`up`'s embedded log); a Kafka client of its own otherwise. */
  log?: EventLog
  /** Whether the bridge's registry has the process metrics (CPU, memory, open files, handles),
   * prefixed `fleetstream_bridge_`. Default true; `up` serves one set for its one process. */
  processMetrics?: boolean
}

/** Builds the ingest core: ensures the raw and dead-letter topics, connects the idempotent producer. */
export async function createIngestCore(
  cfg: BridgeRoleConfig,
  logger: Logger,
  opts: BridgeOptions = {},
): Promise<IngestCore> {
  const b = cfg.bridge
  const log = opts.log ?? new KafkaEventLog(cfg.kafka, logger)
  const admin = await log.admin()
  try {
    await admin.ensureTopics(
      designTopics(cfg.topics).filter((t) => t.name === cfg.topics.raw || t.name === cfg.topics.deadletter),
    )
  } finally {
    await admin.close()
  }
  const registry = createSchemaRegistry(cfg.schemaRegistry)
  const codec = await createTelemetryCodec(registry)
  const producer =
    b.writer.producerThread && log instanceof KafkaEventLog
      ? await threadedProducer(cfg.kafka, logger)
      : await log.producer()
  const metrics = new BridgeMetrics(opts.processMetrics ?? true)
  const writer = new DurableWriter(producer, {
    ...b.writer,
    onBatch: (_n, seconds) => metrics.produceLatency.observe(seconds),
  })
  metrics.bufferedRecords = () => writer.bufferedRecords
  const pipeline = new IngestPipeline({
    config: b,
    rawTopic: cfg.topics.raw,
    deadletterTopic: cfg.topics.deadletter,
    templates: b.topics.telemetry.map(compileTopicTemplate),
    codec,
    registry,
    writer,
    metrics,
    logger,
    trace: cfg.debugDataFlow ? dataFlowTracer(logger, true) : undefined,
  })
  return {
    pipeline,
    writer,
    metrics,
    close: async () => {
      await writer.close()
      await producer.close()
      if (!opts.log) await log.close()
    },
  }
}

/**
 * Starts the bridge: the ingest core, and every enabled front end (embedded MQTT or
 * external-broker client, and HTTP) on it.
 */
export async function startBridge(
  cfg: BridgeRoleConfig,
  logger: Logger,
  opts: BridgeOptions = {},
): Promise<RunningBridge> {
  const b = cfg.bridge
  const core = await createIngestCore(cfg, logger, opts)
  const { pipeline, metrics } = core
  const devices = createDeviceStore(b.auth)
  let ready = true
  const deps = {
    config: b,
    pipeline,
    devices,
    downlink: compileTopicTemplate(b.topics.downlink),
    metrics,
    logger,
    ready: () => ready,
  }
  const running: RunningAdapter[] = []
  try {
    for (const adapter of ingestAdapters.filter((a) => a.enabled(b))) running.push(await adapter.start(deps))
  } catch (err) {
    for (const r of running) await r.close().catch(() => undefined)
    await core.close()
    throw err
  }
  const listening = Object.assign({}, ...running.map((r) => r.listening)) as RunningBridge['listening']
  logger.child({ component: 'bridge' }).info('bridge started', { listening, rawTopic: cfg.topics.raw })
  return {
    listening,
    metrics,
    close: async () => {
      ready = false
      for (const r of running) await r.stopAccepting()
      // Finish every Kafka write first, so its ack still reaches the device.
      await core.writer.close()
      for (const r of running) await r.close().catch(() => undefined)
      await core.close()
      await devices.close()
    },
  }
}
