import { AvroCodec } from '../../core/envelope/codec'
import { LocalSchemaRegistry } from '../../core/envelope/registry'
import { createTelemetryCodec } from '../../core/envelope/telemetry'
import {
  compileRule,
  evaluateReading,
  memoryKeyOf,
  newRuleState,
  type CompiledRule,
} from '../../rules/engine'
import { ruleSchema } from '../../rules/schema'
import type { Alert, Device, Telemetry } from '../../schemas/types.generated'
import { telemetryRecords } from '../testing/telemetry-records'
import { rulesJob, type RulesState } from './rules'
import { decodeDeviceRules } from './rule-state-codec'

// The rules job's step without Kafka (the real-Kafka tests are in rules.int.test.ts): rate and
// anomaly rules that watch a metric the same way share one memory per device, and judge exactly
// as each rule would with a memory of its own (the engine's per-rule path, rules/engine.ts).

const T = Date.UTC(2026, 10, 27, 6)
const registry = new LocalSchemaRegistry()
const codecs = Promise.all([
  createTelemetryCodec(registry),
  AvroCodec.bundled<Device>(registry, 'device.avsc'),
  AvroCodec.bundled<Alert>(registry, 'alert.avsc'),
])
const rule = (def: object): CompiledRule => compileRule(ruleSchema.parse({ severity: 'warning', ...def }))

const RULES = [
  rule({ id: 'z1', kind: 'anomaly', metric: 'm', window: 8, threshold: 2.5, minSamples: 5 }),
  rule({ id: 'z2', kind: 'anomaly', metric: 'm', window: 8, threshold: 1.5, minSamples: 4 }),
  rule({ id: 'z3', kind: 'anomaly', metric: 'm', window: 5, threshold: 2, minSamples: 4 }),
  rule({ id: 'e1', kind: 'anomaly', method: 'ewma', metric: 'm', window: 8, threshold: 2, minSamples: 4 }),
  rule({ id: 'e2', kind: 'anomaly', method: 'ewma', metric: 'm', window: 8, threshold: 3, minSamples: 4 }),
  rule({ id: 'q1', kind: 'rate', metric: 'm', risePerMinute: 30 }),
  rule({ id: 'q2', kind: 'rate', metric: 'm', risePerMinute: 60, fallPerMinute: 60 }),
  rule({ id: 'q3', kind: 'rate', metric: 'n', risePerMinute: 10 }),
  rule({ id: 'q4', kind: 'rate', metric: 'm', risePerMinute: 30, minSpan: '25s' }),
  rule({ id: 't1', kind: 'threshold', metric: 'm', above: 90 }),
]

/** Two devices over 60 readings each: a wobbling signal with jumps, a few out of order, some without `m`. */
function readings(): Telemetry[] {
  const out: Telemetry[] = []
  for (let i = 0; i < 60; i++)
    for (const d of ['a', 'b']) {
      const ts = T + (i % 13 === 7 ? i - 3 : i) * 10_000 // now and then a reading older than the last
      const m = 50 + ((i * 7 + (d === 'a' ? 0 : 3)) % 11) + (i % 17 === 9 ? 45 : 0)
      const metrics: Telemetry['metrics'] = i % 19 === 5 ? { n: i } : { m, n: i % 5 }
      out.push({ deviceId: d, tenant: null, ts, receivedAt: ts, seq: i, metrics, meta: {}, source: 'mqtt' })
    }
  return out
}

/** The engine's per-rule path: each rule with a state (and memory) of its own. */
function perRule(rs: Telemetry[]): string[] {
  const out: string[] = []
  const states = new Map<string, ReturnType<typeof newRuleState>>()
  for (const r of rs)
    for (const cr of RULES) {
      const k = `${cr.rule.id}/${r.deviceId}`
      if (!states.has(k)) states.set(k, newRuleState())
      for (const a of evaluateReading(cr, states.get(k)!, { ...r, device: undefined }).events)
        out.push(`${a.ruleId} ${a.deviceId} ${a.event} ${a.ts - T} ${a.value} ${a.alertId}`)
    }
  return out
}

async function job(rules: CompiledRule[] = RULES, idleTimeoutMs = Number.MAX_SAFE_INTEGER) {
  const [telemetry, device, alert] = await codecs
  const j = rulesJob({
    enrichedTopic: 'enriched',
    devicesTopic: 'devices',
    alertsTopic: 'alerts',
    deadletterTopic: 'dlq',
    table: { list: () => rules },
    time: { outOfOrdernessMs: 60_000, idleTimeoutMs, maxFutureMs: 3_600_000 },
    telemetry,
    device,
    alert,
  })
  const records = (rs: Telemetry[], from = 0) => telemetryRecords(telemetry, 'enriched', rs, from)
  const decode = async (outputs: { topic: string; value: Buffer | null }[]) => {
    const out: string[] = []
    for (const o of outputs) {
      expect(o.topic).toBe('alerts')
      const a = await alert.decode(o.value!)
      out.push(`${a.ruleId} ${a.deviceId} ${a.event} ${a.ts - T} ${a.value} ${a.alertId}`)
    }
    return out
  }
  return { j, records, decode }
}

/** Readings in the order the job sees them: one partition, by device, as the input has them. */
const NOW = T + 3_600_000

describe('stream-jobs > rules job > shared signal memories', () => {
  it('raises and clears exactly what each rule would with a memory of its own', async () => {
    const { j, records, decode } = await job()
    const rs = readings()
    const state = j.initState()
    const got: string[] = []
    for (let i = 0; i < rs.length; i += 7) {
      const step = await j.process(state, records(rs.slice(i, i + 7), i), NOW)
      got.push(...(await decode(step.outputs)))
    }
    const expected = perRule(rs)
    expect(expected.length).toBeGreaterThan(10) // the input does raise and clear alerts
    expect(got).toEqual(expected)
  })

  it('keeps one memory per (metric, method, window) in the changelog, not one per rule', async () => {
    const { j, records } = await job()
    const state = j.initState()
    const step = await j.process(state, records(readings().slice(0, 20)), NOW)
    const entry = decodeDeviceRules(step.changelog.get('rules\u0000a')!)
    expect(Object.keys(entry.memory).sort()).toEqual(
      [
        'ewma\u0000m\u00008',
        'rate\u0000m',
        'rate\u0000m\u000025000',
        'rate\u0000n',
        'zscore\u0000m\u00005',
        'zscore\u0000m\u00008',
      ].sort(),
    )
    for (const st of Object.values(entry.rules)) expect(st).not.toHaveProperty('samples')
  })

  it('continues from its changelog as if never stopped, and reads per-rule memories of older entries', async () => {
    const { j, records, decode } = await job()
    const rs = readings()
    const whole = j.initState()
    const all = await decode((await j.process(whole, records(rs), NOW)).outputs)

    const first = j.initState()
    const step = await j.process(first, records(rs.slice(0, 50)), NOW)
    const restored: RulesState = j.initState()
    for (const [k, v] of step.changelog) if (v) j.restore(restored, k, v)
    const rest = await decode((await j.process(restored, records(rs.slice(50), 50), NOW)).outputs)
    expect([...(await decode(step.outputs)), ...rest]).toEqual(all)

    // An entry as written before memories were shared (and in JSON, before the binary format):
    // rate and anomaly memory inside each rule.
    const old = j.initState()
    const entry = decodeDeviceRules(step.changelog.get('rules\u0000b')!)
    const rulesOld: Record<string, object> = { ...entry.rules }
    for (const cr of RULES) {
      const m = entry.memory[memoryKeyOf(cr.rule) ?? '']
      if (m) rulesOld[cr.rule.id] = { ...(rulesOld[cr.rule.id] ?? {}), ...m }
    }
    j.restore(old, 'rules\u0000b', Buffer.from(JSON.stringify({ tenant: null, rules: rulesOld })))
    const fresh = j.initState()
    j.restore(fresh, 'rules\u0000b', step.changelog.get('rules\u0000b')!)
    expect(old.rules.get('b')).toEqual(fresh.rules.get('b'))
  })
})

describe('stream-jobs > rules job > absence rules on ticks', () => {
  // The job keeps a lower bound of when any device can next fall silent, so that a tick does
  // not walk every device's rule states when none can. A reference job whose bound is cleared
  // before every tick always walks them: both must raise the same alerts at the same ticks,
  // also after a restart from the changelog half-way.
  const ABSENCE = [
    rule({ id: 'off', kind: 'absence', after: '2m' }),
    rule({ id: 'quiet', kind: 'absence', after: '5m' }),
    rule({ id: 't1', kind: 'threshold', metric: 'm', above: 90 }),
  ]

  it('raises what a full scan at every tick raises, across a restart', async () => {
    const { j, records, decode } = await job(ABSENCE, 10_000)
    const { j: ref } = await job(ABSENCE, 10_000)
    let fast = j.initState()
    const full = ref.initState()
    const got: string[] = []
    const want: string[] = []
    const changelog = new Map<string, Buffer | null>()
    let offset = 0
    let skipped = 0
    // Five devices report on their own schedules (one goes quiet for good, others pause and come
    // back); processing time runs 20 s per step, ticks every step.
    for (let step = 0; step < 120; step++) {
      const now = T + step * 20_000
      const batch: Telemetry[] = []
      for (const [i, d] of ['a', 'b', 'c', 'd', 'e', 'f'].entries()) {
        // Silent at times; all of them from step 40 to 65 (by step 55 every alert is open:
        // nothing left to wait for) but f, new, reports from step 58 to 63; e back for three steps.
        const silent =
          (step >= 40 && step < 66 && d !== 'f') ||
          (d === 'a' && step > 30) ||
          (d === 'b' && step % 40 > 25 && step < 40) ||
          (d === 'c' && step % 17 > 11) ||
          (d === 'e' && step >= 69 && step < 100) ||
          (d === 'f' && (step < 58 || step >= 64))
        if (silent || (step + i) % (i + 1) !== 0) continue
        batch.push({
          deviceId: d,
          tenant: null,
          ts: now - 1_000,
          receivedAt: now,
          seq: step,
          metrics: { m: 50 + i },
          meta: {},
          source: 'mqtt',
        })
      }
      if (batch.length > 0) {
        const recs = records(batch, offset)
        offset += recs.length
        const a = await j.process(fast, recs, now)
        for (const [k, v] of a.changelog) changelog.set(k, v)
        got.push(...(await decode(a.outputs)))
        want.push(...(await decode((await ref.process(full, recs, now)).outputs)))
      }
      if (fast.wm.watermark < fast.silenceDue) skipped++
      const t = j.tick!(fast, now)
      for (const [k, v] of t.changelog) changelog.set(k, v)
      got.push(`tick ${step}`, ...(await decode(t.outputs)))
      full.silenceDue = Number.NEGATIVE_INFINITY
      want.push(`tick ${step}`, ...(await decode(ref.tick!(full, now).outputs)))
      if (step === 90) {
        // A restart: the state comes back from the changelog alone.
        fast = j.initState()
        for (const [k, v] of changelog) if (v !== null) j.restore!(fast, k, v)
      }
    }
    const silences = want.filter((x) => /^(off|quiet) /.test(x))
    expect(silences.length).toBeGreaterThan(5)
    expect(silences.some((x) => x.startsWith('off f raised'))).toBe(true)
    expect(got).toEqual(want)
    expect(skipped).toBeGreaterThan(60) // most ticks had nothing to look at
  })
})
