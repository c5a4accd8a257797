import { AvroCodec } from '../../core/envelope/codec'
import { LocalSchemaRegistry, loadBundledSchema } from '../../core/envelope/registry'
import { createTelemetryCodec, type Telemetry } from '../../core/envelope/telemetry'
import type { InRecord } from '../../core/kafka/log'
import type { Device } from '../../schemas/types.generated'
import { enrichJob, type UnknownDevicePolicy } from './enrich'

// The job's step is a pure function of its records: the policies are checked here, with no
// broker; enrich.int.test.ts runs the job on the real Kafka.
describe('stream-jobs > enrich > unknown-device policy', () => {
  async function run(policy: UnknownDevicePolicy) {
    const registry = new LocalSchemaRegistry()
    const telemetry = await createTelemetryCodec(registry)
    const device = await AvroCodec.create<Device>(
      registry,
      'dev.fleetstream.Device',
      loadBundledSchema('device.avsc'),
    )
    const job = enrichJob({
      rawTopic: 'raw',
      devicesTopic: 'devices',
      enrichedTopic: 'enriched',
      deadletterTopic: 'dlq',
      unknownDevices: policy,
      telemetry,
      device,
    })
    const rec = (topic: string, key: string, value: Buffer, offset: number): InRecord => ({
      topic,
      partition: 0,
      offset: String(offset),
      key,
      value,
      headers: {},
      timestamp: 0,
    })
    const reading = (id: string): Telemetry => ({
      deviceId: id,
      tenant: null,
      ts: 1_764_000_000_000,
      receivedAt: 0,
      seq: 1,
      metrics: { t: 1 },
      meta: {},
      source: 'mqtt',
    })
    const state = job.initState()
    const step = await job.process(
      state,
      [
        rec(
          'devices',
          'e1',
          device.encode({ deviceId: 'e1', tenant: 't', site: 's', model: null, tags: {}, limits: {} }),
          0,
        ),
        rec('raw', 'e1', telemetry.encode(reading('e1')), 0),
        rec('raw', 'ghost', telemetry.encode(reading('ghost')), 1),
        rec('raw', 'bad', Buffer.from('not avro'), 2),
      ],
      0,
    )
    return { step, telemetry, state }
  }

  it('deadletter: an unknown device goes to the dead-letter topic with its reason', async () => {
    const { step } = await run('deadletter')
    expect(step.outputs.map((o) => [o.topic, o.key, o.headers?.['fs-reason-code'] ?? null])).toEqual([
      ['enriched', 'e1', null],
      ['dlq', 'ghost', 'FS_JOBS_UNKNOWN_DEVICE'],
      ['dlq', 'bad', 'FS_JOBS_DECODE'],
    ])
  })

  it('pass: an unknown device passes, flagged; a known one gets its registry data; the registry is in the changelog', async () => {
    const { step, telemetry, state } = await run('pass')
    const enriched = step.outputs
      .filter((o) => o.topic === 'enriched')
      .map((o) => telemetry.type.fromBuffer(o.value!.subarray(5)) as Telemetry)
    expect(enriched.map((e) => [e.deviceId, e.tenant, e.meta])).toEqual([
      ['e1', 't', { site: 's' }],
      ['ghost', null, { unknown_device: 'true' }],
    ])
    expect([...step.changelog.keys()]).toEqual(['e1'])
    expect(state.devices.get('e1')?.site).toBe('s')
  })
})
