import { LocalSchemaRegistry } from '../../core/envelope/registry'
import { createTelemetryCodec, type Telemetry } from '../../core/envelope/telemetry'
import type { InRecord } from '../../core/kafka/log'
import { deviceSessionsJob, type DeviceSession, type DeviceSessionsState } from './device-sessions'
import type { StreamJob } from '../runtime/job'

// The example job's step with no broker: sessions close on the watermark, late readings are
// dead-lettered, and a state rebuilt from the changelog carries on exactly.
// device-sessions.int.test.ts runs it on the real Kafka.
describe('stream-jobs > examples > device sessions (pure step)', () => {
  const MIN = 60_000
  const T = Date.UTC(2026, 10, 1, 12)
  const time = { outOfOrdernessMs: 5_000, idleTimeoutMs: 3_600_000, maxFutureMs: 3_600_000 }
  let job: StreamJob<DeviceSessionsState>
  let encode: (t: Telemetry) => Buffer
  let offset = 0

  beforeAll(async () => {
    const telemetry = await createTelemetryCodec(new LocalSchemaRegistry())
    encode = (t) => telemetry.encode(t)
    job = deviceSessionsJob({
      inputTopic: 'in',
      outputTopic: 'sessions',
      deadletterTopic: 'dlq',
      gapMs: 2 * MIN,
      time,
      telemetry,
    })
  })

  const rec = (deviceId: string, ts: number): InRecord => ({
    topic: 'in',
    partition: 0,
    offset: String(offset++),
    key: deviceId,
    value: encode({
      deviceId,
      tenant: null,
      ts,
      receivedAt: ts,
      seq: null,
      metrics: { t: 1 },
      meta: {},
      source: 'mqtt',
    }),
    headers: {},
    timestamp: ts,
  })
  const sessions = (outputs: { topic: string; value: Buffer | null }[]) =>
    outputs.filter((o) => o.topic === 'sessions').map((o) => JSON.parse(o.value!.toString()) as DeviceSession)

  it('emits a session once the watermark passes its end plus the gap', async () => {
    const st = job.initState()
    const now = T + 10 * MIN
    const a = await job.process(st, [rec('a', T), rec('a', T + 30_000), rec('b', T + 10_000)], now)
    expect(sessions(a.outputs)).toEqual([])
    // 10 minutes later in event time: both devices' sessions are over.
    const b = await job.process(st, [rec('c', T + 10 * MIN)], now)
    expect(sessions(b.outputs)).toEqual([
      { deviceId: 'b', start: T + 10_000, end: T + 10_001, readings: 1, kind: 'final' },
      { deviceId: 'a', start: T, end: T + 30_001, readings: 2, kind: 'final' },
    ])
    expect(b.firings).toEqual({ final: 2 })
    expect(job.stateSize!(st)).toBe(1) // c's session is still open
  })

  it('dead-letters a reading later than every open session, with its reason', async () => {
    const st = job.initState()
    await job.process(st, [rec('a', T + 20 * MIN)], T + 30 * MIN)
    const out = await job.process(st, [rec('a', T)], T + 30 * MIN)
    expect(out.outputs).toHaveLength(1)
    expect(out.outputs[0]!.topic).toBe('dlq')
    expect(out.outputs[0]!.headers!['fs-reason-code']).toBe('FS_JOBS_LATE')
  })

  it('restores from its changelog and goes on as if it had never stopped', async () => {
    const input1 = [rec('a', T), rec('a', T + MIN), rec('b', T + 30_000)]
    const input2 = [rec('a', T + 2 * MIN), rec('z', T + 30 * MIN)]
    // Uninterrupted.
    const clean = job.initState()
    await job.process(clean, input1, T + 40 * MIN)
    const want = sessions((await job.process(clean, input2, T + 40 * MIN)).outputs)
    // Stopped after input1: a new state is rebuilt from the changelog entries.
    const before = job.initState()
    const step = await job.process(before, input1, T + 40 * MIN)
    const restored = job.initState()
    for (const [k, v] of step.changelog) if (v) job.restore(restored, k, v)
    const got = sessions((await job.process(restored, input2, T + 40 * MIN)).outputs)
    expect(got).toEqual(want)
    expect(want.find((s) => s.deviceId === 'a')).toMatchObject({
      readings: 3,
      start: T,
      end: T + 2 * MIN + 1,
    })
  })
})
