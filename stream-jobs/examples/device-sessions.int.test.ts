import { LocalSchemaRegistry } from '../../core/envelope/registry'
import { createTelemetryCodec, type Telemetry } from '../../core/envelope/telemetry'
import type { KafkaEventLog } from '../../core/kafka/kafkajs-log'
import { collect, testKafkaLog, testLogger } from '../../test/kafka'
import { uniqueName } from '../../test/servers'
import { runJob } from '../runtime/runner'
import { deviceSessionsJob, type DeviceSession } from './device-sessions'

// The example job deployed the way the guide (stream-jobs/README.md) says: runJob on the real Kafka.
describe('stream-jobs > examples > device sessions on Kafka [kafka]', () => {
  let log: KafkaEventLog
  beforeAll(() => {
    log = testKafkaLog()
  })
  afterAll(async () => {
    await log?.close()
  })

  it('turns readings into device sessions, exactly once, on the real broker', async () => {
    const id = uniqueName('sessions')
    const topics = { input: `${id}.in`, output: `${id}.sessions`, dlq: `${id}.dlq` }
    const admin = await log.admin()
    await admin.ensureTopics([{ name: topics.input, partitions: 2, replicationFactor: 1 }])
    await admin.close()
    const telemetry = await createTelemetryCodec(new LocalSchemaRegistry())
    const job = await runJob(
      deviceSessionsJob({
        inputTopic: topics.input,
        outputTopic: topics.output,
        deadletterTopic: topics.dlq,
        gapMs: 60_000,
        time: { outOfOrdernessMs: 5_000, idleTimeoutMs: 3_600_000, maxFutureMs: 300_000 },
        telemetry,
      }),
      log,
      {
        groupId: `${id}-job`,
        instanceId: 'a',
        changelogTopic: `${id}.changelog`,
        logger: testLogger('sessions'),
      },
    )
    const T = Math.floor((Date.now() - 3_600_000) / 60_000) * 60_000
    const reading = (deviceId: string, ts: number): Telemetry => ({
      deviceId,
      tenant: null,
      ts,
      receivedAt: ts,
      seq: null,
      metrics: { t: 1 },
      meta: {},
      source: 'mqtt',
    })
    // Four devices, two sessions each (a 5-minute pause), then a reading per device 20 minutes
    // on, whose watermark closes the earlier sessions.
    const devices = ['d1', 'd2', 'd3', 'd4']
    const readings = devices
      .flatMap((d) => [
        reading(d, T),
        reading(d, T + 20_000),
        reading(d, T + 40_000),
        reading(d, T + 5 * 60_000),
        reading(d, T + 5 * 60_000 + 10_000),
        reading(d, T + 25 * 60_000),
      ])
      .sort((a, b) => a.ts - b.ts) // devices share partitions: in event-time order
    const producer = await log.producer()
    try {
      await producer.send(
        readings.map((r) => ({ topic: topics.input, key: r.deviceId, value: telemetry.encode(r) })),
      )
      const out = await collect(
        log,
        { groupId: `${id}-read`, topics: [topics.output] },
        (rs) => rs.length >= devices.length * 2,
      )
      const got = out
        .map((r) => JSON.parse(r.value!.toString()) as DeviceSession)
        .sort((a, b) => a.deviceId.localeCompare(b.deviceId) || a.start - b.start)
      expect(got).toEqual(
        devices.flatMap((d) => [
          { deviceId: d, start: T, end: T + 40_001, readings: 3, kind: 'final' },
          { deviceId: d, start: T + 5 * 60_000, end: T + 5 * 60_000 + 10_001, readings: 2, kind: 'final' },
        ]),
      )
    } finally {
      await producer.close()
      await job.close()
    }
  })
})
