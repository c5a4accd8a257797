import { LocalSchemaRegistry } from '../../core/envelope/registry'
import { createTelemetryCodec } from '../../core/envelope/telemetry'
import { createLogger } from '../../core/logging/logger'
import { RecordingProducer } from '../../test/recording-producer'
import { bridgeConfig, type BridgeConfig } from '../config'
import { PushbackError, RateLimitError } from '../errors'
import { BridgeMetrics } from '../metrics'
import { compileTopicTemplate } from '../topic-template'
import { DLQ_HEADERS, IngestPipeline, type IngestRequest } from './pipeline'
import { DurableWriter } from './writer'
import Transport from 'winston-transport'

class Silent extends Transport {
  override log(_i: unknown, next: () => void): void {
    next()
  }
}

const NOW = Date.UTC(2026, 10, 26, 12)

async function setup(overrides: Partial<BridgeConfig> = {}) {
  const config = { ...bridgeConfig.parse({}), ...overrides }
  const registry = new LocalSchemaRegistry()
  const codec = await createTelemetryCodec(registry)
  const producer = new RecordingProducer()
  const metrics = new BridgeMetrics(false)
  const writer = new DurableWriter(producer, { ...config.writer, lingerMs: 0 })
  const pipeline = new IngestPipeline({
    config,
    rawTopic: 'raw',
    deadletterTopic: 'dlq',
    templates: config.topics.telemetry.map(compileTopicTemplate),
    codec,
    registry,
    writer,
    metrics,
    logger: createLogger({ transports: [new Silent()] }),
    trace: () => undefined,
  })
  const req = (payload: unknown, over: Partial<IngestRequest> = {}): IngestRequest => ({
    source: 'mqtt',
    deviceId: 'd1',
    tenant: 'acme',
    topic: 'devices/d1/telemetry',
    payload: Buffer.isBuffer(payload)
      ? payload
      : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)),
    receivedAt: NOW,
    ...over,
  })
  const raw = async () =>
    Promise.all(producer.records.filter((r) => r.topic === 'raw').map((r) => codec.decode(r.value!)))
  const dlq = () => producer.records.filter((r) => r.topic === 'dlq')
  const metric = async (name: string) =>
    (await metrics.registry.getSingleMetricAsString(name)).split('\n').filter((l) => !l.startsWith('#'))
  return { pipeline, producer, req, raw, dlq, metric }
}

describe('bridge > ingest > pipeline', () => {
  it('writes a reading as an Avro envelope keyed by device, and resolves after the write', async () => {
    const { pipeline, req, raw, producer } = await setup()
    const out = await pipeline.ingest(req({ ts: NOW - 1000, seq: 1, temperature: 21.5 }))
    expect(out).toEqual({ accepted: 1, duplicates: 0, diverted: 0, rejected: [] })
    expect(producer.records[0]!.key).toBe('d1')
    expect(await raw()).toEqual([
      {
        deviceId: 'd1',
        tenant: 'acme',
        ts: NOW - 1000,
        receivedAt: NOW,
        seq: 1,
        metrics: { temperature: 21.5 },
        meta: {},
        source: 'mqtt',
      },
    ])
  })

  it('adds topic variables other than deviceId to meta', async () => {
    const { pipeline, req, raw } = await setup({
      ...bridgeConfig.parse({}),
      topics: { telemetry: ['{site}/{deviceId}'], downlink: 'x/{deviceId}' },
    })
    await pipeline.ingest(req({ t: 1, ts: NOW }, { topic: 'plant-7/d1' }))
    expect((await raw())[0]!.meta).toEqual({ site: 'plant-7' })
  })

  it.each([
    ['an unknown topic', { t: 1 }, { topic: 'telemetry/d1' }, 'FS_BRIDGE_TOPIC'],
    ["another device's topic", { t: 1 }, { topic: 'devices/d2/telemetry' }, 'FS_BRIDGE_FORBIDDEN'],
    ['malformed JSON', '{"t":', {}, 'FS_BRIDGE_DECODE'],
    ['a huge payload', { s: 'x'.repeat(300 * 1024) }, {}, 'FS_BRIDGE_TOO_LARGE'],
  ])(
    'sends %s to the dead-letter topic with its reason and original bytes',
    async (_n, payload, over, code) => {
      const { pipeline, req, raw, dlq, metric } = await setup()
      const r = req(payload, over)
      const out = await pipeline.ingest(r)
      expect(out.accepted).toBe(0)
      expect(out.rejected[0]!.code).toBe(code)
      expect(await raw()).toEqual([])
      const [d] = dlq()
      expect(d!.value!.equals(r.payload)).toBe(true)
      expect(d!.key).toBe('d1')
      expect(d!.headers).toMatchObject({
        [DLQ_HEADERS.code]: code,
        [DLQ_HEADERS.source]: 'mqtt',
        [DLQ_HEADERS.device]: 'd1',
        [DLQ_HEADERS.receivedAt]: String(NOW),
      })
      expect((await metric('fleetstream_bridge_rejected_total')).join()).toContain(`reason="${code}"`)
      expect((await metric('fleetstream_bridge_deadletter_total')).join()).toContain(`reason="${code}"`)
    },
  )

  it('keeps the good readings of a mixed batch and dead-letters the rest in one record', async () => {
    const { pipeline, req, raw, dlq } = await setup()
    const out = await pipeline.ingest(
      req({
        deviceinfo: { deviceid: 'd1', fw_ver: '3' },
        tsdata: [
          { timestamp: NOW - 2, t: 1 },
          { timestamp: NOW - 1, t: [1] },
          { timestamp: NOW, t: 3 },
        ],
      }),
    )
    expect(out.accepted).toBe(2)
    expect(out.rejected).toEqual([
      { index: 1, code: 'FS_BRIDGE_TYPE', message: expect.stringContaining('metric t is an array') },
    ])
    expect((await raw()).map((e) => e.metrics.t)).toEqual([1, 3])
    expect(JSON.parse(dlq()[0]!.headers![DLQ_HEADERS.rejects] as string)).toHaveLength(1)
  })

  it('drops exact duplicates of (deviceId, ts, seq) and counts them', async () => {
    const { pipeline, req, raw, metric } = await setup()
    await pipeline.ingest(req({ ts: NOW - 5, seq: 7, t: 1 }))
    const again = await pipeline.ingest(req({ ts: NOW - 5, seq: 7, t: 1 }))
    expect(again).toMatchObject({ accepted: 0, duplicates: 1 })
    expect(await raw()).toHaveLength(1)
    expect(await metric('fleetstream_bridge_duplicates_dropped_total')).toContain(
      'fleetstream_bridge_duplicates_dropped_total 1',
    )
  })

  it('counts sequence gaps and the numbers missing', async () => {
    const { pipeline, req, metric } = await setup()
    for (const seq of [1, 2, 6, 4]) await pipeline.ingest(req({ ts: NOW - 100 + seq, seq, t: 1 }))
    expect(await metric('fleetstream_bridge_seq_gaps_total')).toContain('fleetstream_bridge_seq_gaps_total 1')
    expect(await metric('fleetstream_bridge_seq_missing_total')).toContain(
      'fleetstream_bridge_seq_missing_total 3',
    )
    expect(await metric('fleetstream_bridge_seq_reorders_total')).toContain(
      'fleetstream_bridge_seq_reorders_total 1',
    )
  })

  it.each([
    ['accept', 2, 0, 0],
    ['reject', 1, 1, 0],
    ['deadletter', 1, 0, 1],
  ] as const)('drift policy %s', async (drift, written, rejected, diverted) => {
    const { pipeline, req, raw, dlq } = await setup({ ...bridgeConfig.parse({}), drift })
    await pipeline.ingest(req({ ts: NOW - 2, t: 1 }))
    const out = await pipeline.ingest(req({ ts: NOW - 1, t: 'hot' }))
    expect(out.rejected).toHaveLength(rejected)
    expect(out.diverted).toBe(diverted)
    expect(await raw()).toHaveLength(written)
    expect(dlq()).toHaveLength(rejected + diverted)
    if (rejected + diverted) expect(dlq()[0]!.headers![DLQ_HEADERS.code]).toBe('FS_BRIDGE_DRIFT')
  })

  it('throws RateLimitError over the device rate, without writing anything', async () => {
    const cfg = bridgeConfig.parse({ limits: { ratePerDevice: 1, burstPerDevice: 2 } })
    const { pipeline, req, producer } = await setup(cfg)
    await pipeline.ingest(req({ t: 1, ts: NOW - 2 }))
    await pipeline.ingest(req({ t: 2, ts: NOW - 1 }))
    await expect(pipeline.ingest(req({ t: 3, ts: NOW }))).rejects.toBeInstanceOf(RateLimitError)
    expect(producer.records).toHaveLength(2)
  })

  it('throws PushbackError when Kafka does not confirm within the ack timeout', async () => {
    const cfg = bridgeConfig.parse({ writer: { ackTimeoutMs: 100 } })
    const { pipeline, req, producer } = await setup(cfg)
    producer.hold()
    await expect(pipeline.ingest(req({ t: 1, ts: NOW }))).rejects.toBeInstanceOf(PushbackError)
    producer.release()
  })

  it('throws PushbackError at once when the buffer is full', async () => {
    const cfg = bridgeConfig.parse({ writer: { maxBufferedRecords: 1, ackTimeoutMs: 5000 } })
    const { pipeline, req, producer } = await setup(cfg)
    producer.hold()
    const first = pipeline.ingest(req({ t: 1, ts: NOW - 1 }))
    await expect(pipeline.ingest(req({ t: 2, ts: NOW }))).rejects.toMatchObject({
      code: 'FS_BRIDGE_PUSHBACK',
    })
    producer.release()
    await expect(first).resolves.toMatchObject({ accepted: 1 })
  })

  it('keeps per-device order across a slow Avro decode', async () => {
    const { pipeline, req, raw } = await setup()
    const registry = new LocalSchemaRegistry()
    const codec = await createTelemetryCodec(registry)
    const avroMsg = codec.encode({
      deviceId: 'd1',
      tenant: null,
      ts: NOW - 10,
      receivedAt: 0,
      seq: 1,
      metrics: { n: 1 },
      meta: {},
      source: 'mqtt',
    })
    const a = pipeline.ingest(req(avroMsg))
    const b = pipeline.ingest(req({ ts: NOW - 5, seq: 2, n: 2 }))
    await Promise.all([a, b])
    expect((await raw()).map((e) => e.metrics.n)).toEqual([1, 2])
  })

  it('acknowledges a resend only once the first copy is durable', async () => {
    const { pipeline, req, producer } = await setup()
    producer.hold()
    const first = pipeline.ingest(req({ ts: NOW - 1, seq: 1, t: 1 }))
    let resendDone = false
    const resend = pipeline.ingest(req({ ts: NOW - 1, seq: 1, t: 1 })).then((o) => ((resendDone = true), o))
    await new Promise((r) => setTimeout(r, 30))
    expect(resendDone).toBe(false) // the first copy is not in Kafka yet
    producer.release()
    expect(await first).toMatchObject({ accepted: 1 })
    expect(await resend).toMatchObject({ accepted: 0, duplicates: 1 })
    expect(producer.records).toHaveLength(1)
  })

  it('writes a resend when the first copy was never acknowledged', async () => {
    const { pipeline, req, producer } = await setup(bridgeConfig.parse({ writer: { ackTimeoutMs: 100 } }))
    producer.hold()
    await expect(pipeline.ingest(req({ ts: NOW - 1, seq: 1, t: 1 }))).rejects.toBeInstanceOf(PushbackError)
    producer.release()
    // The device resends what was not acknowledged: it must be written, not dropped as a duplicate.
    expect(await pipeline.ingest(req({ ts: NOW - 1, seq: 1, t: 1 }))).toMatchObject({
      accepted: 1,
      duplicates: 0,
    })
  })
})
