import { AvroCodec } from '../../core/envelope/codec'
import { LocalSchemaRegistry } from '../../core/envelope/registry'
import { createTelemetryCodec, type Telemetry } from '../../core/envelope/telemetry'
import type { KafkaEventLog } from '../../core/kafka/kafkajs-log'
import type { InRecord } from '../../core/kafka/log'
import type { Device } from '../../schemas/types.generated'
import { collect, testKafkaLog, testLogger } from '../../test/kafka'
import { uniqueName } from '../../test/servers'
import { JobMetrics } from '../runtime/metrics'
import { runJob } from '../runtime/runner'
import { enrichJob, type UnknownDevicePolicy } from './enrich'

describe('stream-jobs > enrichment job on Kafka [kafka]', () => {
  let log: KafkaEventLog
  let telemetry: AvroCodec<Telemetry>
  let deviceCodec: AvroCodec<Device>

  beforeAll(async () => {
    log = testKafkaLog()
    const registry = new LocalSchemaRegistry()
    telemetry = await createTelemetryCodec(registry)
    deviceCodec = await AvroCodec.bundled<Device>(registry, 'device.avsc')
  })
  afterAll(async () => {
    await log?.close()
  })

  const device = (i: number, site = `site-${i % 3}`): Device => ({
    deviceId: `e${i}`,
    tenant: `t${i % 2}`,
    site,
    model: 'TH-200',
    tags: { floor: String(i) },
    limits: {},
  })
  const reading = (id: string, seq: number): Telemetry => ({
    deviceId: id,
    tenant: null,
    ts: Date.now() - 60_000 + seq,
    receivedAt: Date.now(),
    seq,
    metrics: { t: seq },
    meta: { fw: '1' },
    source: 'mqtt',
  })

  async function setup(policy: UnknownDevicePolicy) {
    // Each test has an event log of its own (no connections shared between the tests' jobs).
    const log = testKafkaLog()
    const id = uniqueName(`enrich-${policy}`)
    const topics = {
      raw: `${id}.raw`,
      devices: `${id}.devices`,
      enriched: `${id}.enriched`,
      dlq: `${id}.dlq`,
    }
    const admin = await log.admin()
    await admin.ensureTopics([
      { name: topics.raw, partitions: 3, replicationFactor: 1 },
      { name: topics.devices, partitions: 3, replicationFactor: 1, compacted: true },
    ])
    await admin.close()
    const producer = await log.producer()
    const sendDevices = (ds: Device[]) =>
      producer.send(ds.map((d) => ({ topic: topics.devices, key: d.deviceId, value: deviceCodec.encode(d) })))
    const sendReadings = (rs: Telemetry[]) =>
      producer.send(rs.map((r) => ({ topic: topics.raw, key: r.deviceId, value: telemetry.encode(r) })))
    const metrics = new JobMetrics()
    const job = await runJob(
      enrichJob({
        rawTopic: topics.raw,
        devicesTopic: topics.devices,
        enrichedTopic: topics.enriched,
        deadletterTopic: topics.dlq,
        unknownDevices: policy,
        telemetry,
        device: deviceCodec,
      }),
      log,
      {
        groupId: `${id}-enrich`,
        instanceId: 'a',
        changelogTopic: `${id}.enrich-changelog`,
        logger: testLogger('enrich-job'),
        metrics,
      },
    )
    const decodeAll = (rs: InRecord[]) =>
      rs.map((r) => telemetry.type.fromBuffer(r.value!.subarray(5)) as Telemetry)
    /** Sends probe readings of `deviceId` until an enriched one satisfies `ok`: the registry has caught up. */
    const until = async (deviceId: string, ok: (e: Telemetry) => boolean) => {
      for (let seq = 10_000; seq < 10_100; seq++) {
        await sendReadings([reading(deviceId, seq)])
        const got = await collect(
          log,
          { groupId: `${id}-probe-${seq}`, topics: [topics.enriched] },
          (rs) => decodeAll(rs).some((e) => e.seq === seq),
          5_000,
        )
        const probe = decodeAll(got).find((e) => e.seq === seq)
        if (probe && ok(probe)) return
      }
      throw new Error('the registry update never applied')
    }
    const close = async () => {
      await job.close()
      await producer.close()
      await log.close()
    }
    return { topics, sendDevices, sendReadings, until, decodeAll, close, log, metrics }
  }

  it('adds registry data to readings, flags unknown devices, and applies registry updates without a restart', async () => {
    const t = await setup('pass')
    try {
      await t.sendDevices(Array.from({ length: 10 }, (_, i) => device(i)))
      await t.until('e9', (e) => e.meta.site === 'site-0')
      await t.sendReadings(Array.from({ length: 12 }, (_, i) => reading(`e${i}`, 1)))
      const out = t.decodeAll(
        await collect(
          log,
          { groupId: `chk-${Date.now()}`, topics: [t.topics.enriched] },
          (rs) => t.decodeAll(rs).filter((e) => e.seq === 1).length >= 12,
        ),
      )
      const firsts = new Map(out.filter((e) => e.seq === 1).map((e) => [e.deviceId, e]))
      expect(firsts.size).toBe(12)
      expect(firsts.get('e4')).toMatchObject({
        tenant: 't0',
        meta: { fw: '1', site: 'site-1', model: 'TH-200', 'tag.floor': '4' },
      })
      expect(firsts.get('e10')!.meta).toEqual({ fw: '1', unknown_device: 'true' })
      expect(firsts.get('e11')!.tenant).toBeNull()

      // The registry changes: the job picks it up while running.
      await t.sendDevices([device(4, 'moved')])
      await t.until('e4', (e) => e.meta.site === 'moved')
    } finally {
      await t.close()
    }
  })

  it('dead-letters readings of unknown devices under the deadletter policy', async () => {
    const t = await setup('deadletter')
    try {
      await t.sendDevices([device(1)])
      await t.until('e1', (e) => e.meta.site === 'site-1')
      await t.sendReadings([reading('ghost-1', 1), reading('ghost-2', 1)])
      const dlq = await collect(
        log,
        { groupId: `dlq-${Date.now()}`, topics: [t.topics.dlq] },
        (rs) => rs.length >= 2,
      )
      expect(dlq.map((r) => r.headers['fs-reason-code']!.toString())).toEqual([
        'FS_JOBS_UNKNOWN_DEVICE',
        'FS_JOBS_UNKNOWN_DEVICE',
      ])
      expect(dlq.map((r) => r.key).sort()).toEqual(['ghost-1', 'ghost-2'])
      // Counted by reason, and among the job's outputs by topic (after the commit: poll).
      const value = async (name: string, labels: Record<string, string>) =>
        (await t.metrics.registry.getSingleMetric(name)!.get()).values
          .filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
          .reduce((a, v) => a + v.value, 0)
      const dropped = () =>
        value('fleetstream_job_dropped_records_total', { reason: 'FS_JOBS_UNKNOWN_DEVICE' })
      for (let i = 0; i < 50 && (await dropped()) < 2; i++) await new Promise((r) => setTimeout(r, 100))
      expect(await dropped()).toBe(2)
      expect(await value('fleetstream_job_records_out_total', { topic: t.topics.dlq })).toBe(2)
    } finally {
      await t.close()
    }
  })

  it('holds readings of a device until it is registered, then sends them enriched', async () => {
    const t = await setup('hold')
    try {
      await t.sendReadings([reading('newcomer', 1), reading('newcomer', 2)])
      // Nothing comes out while the device is unknown (the job has read the readings: they are held).
      const early = await collect(
        log,
        { groupId: `early-${Date.now()}`, topics: [t.topics.enriched] },
        () => false,
        3_000,
      )
      expect(early).toHaveLength(0)
      await t.sendDevices([device(77, 'dock')].map((d) => ({ ...d, deviceId: 'newcomer' })))
      const out = t.decodeAll(
        await collect(
          log,
          { groupId: `hold-${Date.now()}`, topics: [t.topics.enriched] },
          (rs) => rs.length >= 2,
        ),
      )
      expect(out.map((e) => [e.deviceId, e.seq, e.meta.site])).toEqual([
        ['newcomer', 1, 'dock'],
        ['newcomer', 2, 'dock'],
      ])
    } finally {
      await t.close()
    }
  })
})
