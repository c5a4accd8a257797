import { AvroCodec } from '../../core/envelope/codec'
import { LocalSchemaRegistry } from '../../core/envelope/registry'
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
    const device = await AvroCodec.bundled<Device>(registry, 'device.avsc')
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

  describe('hold', () => {
    async function setup(opts: { holdMs?: number; maxHeld?: number } = {}) {
      const registry = new LocalSchemaRegistry()
      const telemetry = await createTelemetryCodec(registry)
      const device = await AvroCodec.bundled<Device>(registry, 'device.avsc')
      const job = enrichJob({
        rawTopic: 'raw',
        devicesTopic: 'devices',
        enrichedTopic: 'enriched',
        deadletterTopic: 'dlq',
        unknownDevices: 'hold',
        holdMs: opts.holdMs ?? 1_000,
        maxHeld: opts.maxHeld ?? 100,
        telemetry,
        device,
      })
      let offset = 0
      const rec = (topic: string, key: string, value: Buffer): InRecord => ({
        topic,
        partition: 0,
        offset: String(offset++),
        key,
        value,
        headers: {},
        timestamp: 0,
      })
      const raw = (id: string, seq: number) =>
        rec(
          'raw',
          id,
          telemetry.encode({
            deviceId: id,
            tenant: null,
            ts: 1_764_000_000_000 + seq,
            receivedAt: 0,
            seq,
            metrics: { t: seq },
            meta: {},
            source: 'mqtt',
          }),
        )
      const register = (id: string) =>
        rec(
          'devices',
          id,
          device.encode({ deviceId: id, tenant: 'acme', site: 'north', model: null, tags: {}, limits: {} }),
        )
      const decoded = (outs: { topic: string; value: Buffer | null }[]) =>
        outs
          .filter((o) => o.topic === 'enriched')
          .map((o) => telemetry.type.fromBuffer(o.value!.subarray(5)) as Telemetry)
      return { job, raw, register, decoded }
    }

    it('holds readings of an unknown device and releases them, enriched and in order, once it is registered', async () => {
      const { job, raw, register, decoded } = await setup()
      const st = job.initState()
      const a = await job.process(st, [raw('new', 1), raw('new', 2)], 0)
      expect(a.outputs).toEqual([])
      expect(job.stateSize!(st)).toBe(2)
      const b = await job.process(st, [register('new')], 10)
      expect(decoded(b.outputs).map((e) => [e.seq, e.tenant, e.meta.site])).toEqual([
        [1, 'acme', 'north'],
        [2, 'acme', 'north'],
      ])
      expect(b.changelog.get('held\u0000new')).toBeNull() // the held entry is deleted
      expect(job.stateSize!(st)).toBe(1)
    })

    it('dead-letters held readings whose device is not registered within holdMs, and those over maxHeld', async () => {
      const { job, raw } = await setup({ holdMs: 1_000, maxHeld: 2 })
      const st = job.initState()
      const a = await job.process(st, [raw('x', 1), raw('y', 1), raw('z', 1)], 0)
      expect(a.outputs.map((o) => [o.key, o.headers!['fs-reason-code']])).toEqual([
        ['z', 'FS_JOBS_HOLD_FULL'],
      ])
      expect(job.tick!(st, 999).outputs).toEqual([])
      const expired = job.tick!(st, 1_000)
      expect(expired.outputs.map((o) => [o.key, o.headers!['fs-reason-code']])).toEqual([
        ['x', 'FS_JOBS_UNKNOWN_DEVICE'],
        ['y', 'FS_JOBS_UNKNOWN_DEVICE'],
      ])
      expect(job.stateSize!(st)).toBe(0)
    })

    it('keeps held readings across a restart (changelog)', async () => {
      const { job, raw, register, decoded } = await setup()
      const st = job.initState()
      const step = await job.process(st, [raw('late-reg', 7)], 0)
      const restored = job.initState()
      for (const [k, v] of step.changelog) if (v) job.restore(restored, k, v)
      expect(job.stateSize!(restored)).toBe(1)
      const out = await job.process(restored, [register('late-reg')], 5)
      expect(decoded(out.outputs).map((e) => e.seq)).toEqual([7])
    })
  })
})
