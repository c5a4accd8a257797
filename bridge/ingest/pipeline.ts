import type avro from 'avsc'
import type { AvroCodec } from '../../core/envelope/codec'
import type { SchemaRegistry } from '../../core/envelope/registry'
import type { Telemetry } from '../../core/envelope/telemetry'
import type { OutRecord } from '../../core/kafka/log'
import type { FlowFields, Logger } from '../../core/logging/logger'
import type { BridgeConfig } from '../config'
import { decodeAvro, decodeSync, sniffFormat, type PayloadFormat } from '../decode/formats'
import { readPayload, type DecodeResult, type DecodedReading } from '../decode/readings'
import { PushbackError, RateLimitError, RejectError, type RejectCode } from '../errors'
import { SOURCE_LABELS, type BridgeMetrics, type IngestSource } from '../metrics'
import { matchTopic, type TopicTemplate } from '../topic-template'
import { DriftTracker, describeDrift } from './drift'
import { RateLimiter } from './rate-limit'
import { SequenceTracker } from './sequence'
import type { DurableWriter, Slot } from './writer'

/** A message as a front end (MQTT, HTTP) hands it over, from an authenticated device. */
export interface IngestRequest {
  source: IngestSource
  deviceId: string
  tenant: string | null
  /** The MQTT topic it was published on; null for HTTP. */
  topic: string | null
  payload: Buffer
  /** Set by HTTP's Content-Type; otherwise the format is sniffed. */
  format?: PayloadFormat
  receivedAt: number
}

/** One refused entry, as reported back to the sender. */
export interface RejectedEntry {
  index: number | null
  code: string
  message: string
}

/** What became of a message, once everything written is durable in Kafka. */
export interface IngestOutcome {
  accepted: number
  duplicates: number
  /** Readings sent to the dead-letter topic while the sender is told they were taken (drift policy `deadletter`). */
  diverted: number
  rejected: RejectedEntry[]
}

interface Processed {
  outcome: IngestOutcome
  records: OutRecord[]
  /** Writes of first copies that this message's duplicates wait for. */
  waits: Promise<unknown>[]
}

/** A message refused whole (RejectError) as a decode result; anything else is a fault and goes on up. */
function refused(err: unknown): DecodeResult {
  if (!(err instanceof RejectError)) throw err
  return { readings: [], rejects: [{ index: null, error: err }] }
}

/** Dead-letter record headers (all strings). */
export const DLQ_HEADERS = {
  code: 'fs-reason-code',
  reason: 'fs-reason',
  rejects: 'fs-rejects',
  source: 'fs-source',
  topic: 'fs-topic',
  device: 'fs-device',
  receivedAt: 'fs-received-at',
} as const

/** What the pipeline needs from the rest of the bridge. */
export interface PipelineDeps {
  config: BridgeConfig
  rawTopic: string
  deadletterTopic: string
  templates: TopicTemplate[]
  codec: AvroCodec<Telemetry>
  registry: SchemaRegistry
  writer: DurableWriter
  metrics: BridgeMetrics
  logger: Logger
  /** Data-flow tracing (DEBUG_DATA_FLOW); absent when off, so no fields are built for it. */
  trace?: (stage: string, fields: FlowFields) => void
}

/**
 * The protocol-independent ingest path: topic and identity checks, rate limit, decoding,
 * dedupe, drift policy, envelope encoding, and the dead-letter topic for everything refused.
 * The write-order slot is reserved synchronously on entry, so a device's messages keep their
 * order even when decoding is asynchronous (Avro with a registry lookup).
 */
export class IngestPipeline {
  private readonly seq: SequenceTracker
  private readonly drift = new DriftTracker()
  private readonly rate: RateLimiter
  private readonly avroTypes = new Map<number, avro.Type>()
  private readonly log: Logger

  constructor(private readonly deps: PipelineDeps) {
    const { limits, dedupeWindow } = deps.config
    this.seq = new SequenceTracker(Math.max(1, dedupeWindow))
    this.rate = new RateLimiter(limits.ratePerDevice, limits.burstPerDevice)
    this.log = deps.logger.child({ component: 'bridge.ingest' })
  }

  /**
   * Takes a message; resolves once its readings (and any dead-letter record) are durable in
   * Kafka. Throws PushbackError when the bridge cannot take it now, RateLimitError when the
   * device is over its rate; everything else is reported in the outcome, never thrown.
   */
  async ingest(req: IngestRequest): Promise<IngestOutcome> {
    const { metrics } = this.deps
    metrics.count.received[req.source]++
    let slot: Slot
    try {
      slot = this.deps.writer.reserve()
    } catch (err) {
      if (err instanceof PushbackError) metrics.pushback.inc({ source: req.source })
      throw err
    }
    try {
      if (!this.rate.take(req.deviceId, req.receivedAt)) {
        metrics.rateLimited.inc({ source: req.source })
        throw new RateLimitError(
          `device ${req.deviceId} is over ${this.deps.config.limits.ratePerDevice} messages/s`,
          this.rate.retryAfterS(req.deviceId),
        )
      }
    } catch (err) {
      slot.cancel()
      throw err
    }
    // While this message's write is pending, resends of its readings wait for it (see build()).
    const durable = slot.done
    /** The duplicate window's slots of the readings this message writes. */
    const slots: number[] = []
    let processed: Processed
    try {
      const topicVars: Record<string, string> = {}
      // Synchronous but for Avro with a registry lookup: no promise to wait for otherwise.
      const d = this.decode(req, topicVars)
      processed = this.build(req, d instanceof Promise ? await d : d, topicVars, durable, slots)
    } catch (err) {
      for (const s of slots) this.seq.forget(req.deviceId, s, durable)
      slot.cancel()
      throw err
    }
    const { outcome, records, waits } = processed
    try {
      // The writer fails a write not durable within the ack timeout; the first copies this
      // message's duplicates wait for are other slots of the same writer, with theirs.
      const filled = slot.fill(records)
      await (waits.length ? Promise.all([filled, ...waits]) : filled)
    } catch (err) {
      // Not acknowledged: the device will resend, and the resend must be written, not dropped.
      for (const s of slots) this.seq.forget(req.deviceId, s, durable)
      metrics.pushback.inc({ source: req.source })
      this.log.warn('message not acknowledged: Kafka write failed or timed out', {
        deviceId: req.deviceId,
        code: (err as { code?: string }).code,
        error: (err as Error).message,
      })
      throw err instanceof PushbackError
        ? err
        : new PushbackError(`Kafka write failed: ${(err as Error).message}`, 5)
    } finally {
      for (const s of slots) this.seq.written(req.deviceId, s, durable)
    }
    metrics.count.accepted[req.source] += outcome.accepted
    metrics.ackLatency.observe(SOURCE_LABELS[req.source], (Date.now() - req.receivedAt) / 1000)
    this.deps.trace?.('bridge.durable', {
      deviceId: req.deviceId,
      topic: this.deps.rawTopic,
      accepted: outcome.accepted,
      rejected: outcome.rejected.length,
    })
    return outcome
  }

  /**
   * Records a message refused before it could be decoded (a transport limit, a cross-device
   * request) in the dead-letter topic with its reason. Never throws: under pushback the
   * refusal is counted only.
   */
  async refuse(req: IngestRequest, code: RejectCode, message: string): Promise<void> {
    const { metrics } = this.deps
    metrics.count.received[req.source]++
    metrics.rejected.inc({ source: req.source, reason: code })
    this.log.warn('message refused', { deviceId: req.deviceId, code, reason: message })
    try {
      await this.deps.writer.reserve().fill([this.deadLetterRecord(req, [{ index: null, code, message }])])
      metrics.deadLettered.inc({ reason: code })
    } catch (err) {
      this.log.warn('refused message not dead-lettered', {
        deviceId: req.deviceId,
        code,
        error: (err as Error).message,
      })
    }
  }

  /** Checks a message's size and topic, and decodes its readings; refusals come back as rejects. */
  private decode(
    req: IngestRequest,
    topicVars: Record<string, string>,
  ): DecodeResult | Promise<DecodeResult> {
    try {
      const { limits } = this.deps.config
      if (req.payload.length > limits.maxPayloadBytes) {
        throw new RejectError(
          'FS_BRIDGE_TOO_LARGE',
          `payload of ${req.payload.length} bytes is over the ${limits.maxPayloadBytes}-byte limit`,
          req.deviceId,
        )
      }
      if (req.topic !== null) {
        const vars = matchTopic(this.deps.templates, req.topic, limits.maxTopicLevels)
        if (vars.deviceId !== req.deviceId) {
          throw new RejectError(
            'FS_BRIDGE_FORBIDDEN',
            `device ${req.deviceId} may not publish as ${vars.deviceId}`,
            req.deviceId,
          )
        }
        for (const k in vars) if (k !== 'deviceId') topicVars[k] = vars[k]!
      }
      const format = req.format ?? sniffFormat(req.payload)
      if (format === 'avro') {
        return decodeAvro(req.payload, this.deps.registry, this.avroTypes)
          .then((value) => this.readings(req, value))
          .catch(refused)
      }
      return this.readings(req, decodeSync(req.payload, format))
    } catch (err) {
      return refused(err)
    }
  }

  private readings(req: IngestRequest, value: unknown): DecodeResult {
    const { limits } = this.deps.config
    return readPayload(value, {
      deviceId: req.deviceId,
      receivedAt: req.receivedAt,
      maxFutureSkewMs: limits.maxFutureSkewMs,
      maxMetrics: limits.maxMetrics,
      maxReadings: limits.maxReadingsPerMessage,
      maxStringBytes: limits.maxStringBytes,
    })
  }

  /** Turns decoded readings into Kafka records: envelopes for good readings, one dead-letter record for the rest. */
  private build(
    req: IngestRequest,
    decoded: DecodeResult,
    topicVars: Record<string, string>,
    durable: Promise<unknown>,
    slots: number[],
  ): Processed {
    const outcome: IngestOutcome = { accepted: 0, duplicates: 0, diverted: 0, rejected: [] }
    const records: OutRecord[] = []
    const waits: Promise<unknown>[] = []
    const diverted: RejectedEntry[] = []
    for (const reading of decoded.readings) {
      const missingBefore = this.seq.counts.missing
      const verdict = this.seq.observe(req.deviceId, reading.ts, reading.seq, durable)
      if (verdict === 'gap') {
        this.deps.metrics.seqGaps.inc()
        this.deps.metrics.seqMissing.inc(this.seq.counts.missing - missingBefore)
      } else if (verdict === 'reorder') {
        this.deps.metrics.seqReorders.inc()
      }
      if (verdict === 'duplicate') {
        outcome.duplicates++
        this.deps.metrics.duplicates.inc()
        // Acknowledge a duplicate only once its first copy is durable.
        const first = this.seq.firstCopy(req.deviceId, reading.ts, reading.seq!)
        if (first) waits.push(first)
        continue
      }
      if (this.seq.slot !== -1) slots.push(this.seq.slot)
      const drift = this.drift.check(req.deviceId, reading.metrics)
      if (drift) {
        const policy = this.deps.config.drift
        this.deps.metrics.drift.inc({ policy })
        if (policy !== 'accept') {
          const entry = {
            index: decoded.readings.length > 1 ? decoded.readings.indexOf(reading) : null,
            code: 'FS_BRIDGE_DRIFT',
            message: describeDrift(drift),
          }
          if (policy === 'reject') outcome.rejected.push(entry)
          else diverted.push(entry)
          continue
        }
      }
      this.drift.learn(req.deviceId, reading.metrics)
      records.push(this.envelopeRecord(req, reading, topicVars))
      outcome.accepted++
    }
    for (const r of decoded.rejects)
      outcome.rejected.push({ index: r.index, code: r.error.code, message: r.error.message })
    for (const r of outcome.rejected) this.deps.metrics.rejected.inc({ source: req.source, reason: r.code })
    outcome.diverted = diverted.length
    if (outcome.rejected.length > 0 || diverted.length > 0) {
      const forDlq = [...outcome.rejected, ...diverted]
      records.push(this.deadLetterRecord(req, forDlq))
      this.deps.metrics.deadLettered.inc({ reason: forDlq[0]!.code })
      this.log.warn('message refused to the dead-letter topic', {
        deviceId: req.deviceId,
        code: forDlq[0]!.code,
        reason: forDlq[0]!.message,
        entries: forDlq.length,
      })
    }
    this.deps.trace?.('bridge.decoded', {
      deviceId: req.deviceId,
      source: req.source,
      readings: outcome.accepted,
      rejected: outcome.rejected.length,
    })
    return { outcome, records, waits }
  }

  private envelopeRecord(
    req: IngestRequest,
    r: DecodedReading,
    topicVars: Record<string, string>,
  ): OutRecord {
    const env: Telemetry = {
      deviceId: req.deviceId,
      tenant: req.tenant,
      ts: r.ts,
      receivedAt: req.receivedAt,
      seq: r.seq,
      metrics: r.metrics,
      meta: { ...topicVars, ...r.meta },
      source: req.source,
    }
    return {
      topic: this.deps.rawTopic,
      key: req.deviceId,
      value: this.deps.codec.encode(env),
      timestamp: r.ts,
    }
  }

  /** The original bytes, with why they were refused in headers. */
  private deadLetterRecord(req: IngestRequest, rejects: RejectedEntry[]): OutRecord {
    const first = rejects[0]!
    return {
      topic: this.deps.deadletterTopic,
      key: req.deviceId,
      value: req.payload,
      headers: {
        [DLQ_HEADERS.code]: first.code,
        [DLQ_HEADERS.reason]: first.message.slice(0, 1000),
        [DLQ_HEADERS.rejects]: JSON.stringify(rejects.slice(0, 100)),
        [DLQ_HEADERS.source]: req.source,
        [DLQ_HEADERS.topic]: req.topic ?? '',
        [DLQ_HEADERS.device]: req.deviceId,
        [DLQ_HEADERS.receivedAt]: String(req.receivedAt),
      },
    }
  }

  /** Sequence counters, for metrics and tests. */
  get sequenceCounts() {
    return this.seq.counts
  }
}
