import { AvroCodec } from '../../core/envelope/codec'
import { LocalSchemaRegistry } from '../../core/envelope/registry'
import { createTelemetryCodec } from '../../core/envelope/telemetry'
import type { InRecord } from '../../core/kafka/log'
import { compileRule, evaluateReading, newRuleState, type CompiledRule } from '../../rules/engine'
import { ruleSchema } from '../../rules/schema'
import type { Alert, Device, Telemetry } from '../../schemas/types.generated'
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

async function job() {
  const [telemetry, device, alert] = await codecs
  const j = rulesJob({
    enrichedTopic: 'enriched',
    devicesTopic: 'devices',
    alertsTopic: 'alerts',
    deadletterTopic: 'dlq',
    table: { list: () => RULES },
    time: { outOfOrdernessMs: 60_000, idleTimeoutMs: Number.MAX_SAFE_INTEGER, maxFutureMs: 3_600_000 },
    telemetry,
    device,
    alert,
  })
  const records = (rs: Telemetry[], from = 0): InRecord[] =>
    rs.map((r, i) => ({
      topic: 'enriched',
      partition: 0,
      offset: String(from + i),
      key: r.deviceId,
      value: telemetry.encode(r),
      headers: {},
      timestamp: r.receivedAt,
    }))
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
      const key = cr.rule.kind === 'rate' ? `rate\u0000${cr.rule.metric}` : null
      const anomaly =
        cr.rule.kind === 'anomaly' ? `${cr.rule.method}\u0000${cr.rule.metric}\u0000${cr.rule.window}` : null
      const m = entry.memory[key ?? anomaly ?? '']
      if (m) rulesOld[cr.rule.id] = { ...(rulesOld[cr.rule.id] ?? {}), ...m }
    }
    j.restore(old, 'rules\u0000b', Buffer.from(JSON.stringify({ tenant: null, rules: rulesOld })))
    const fresh = j.initState()
    j.restore(fresh, 'rules\u0000b', step.changelog.get('rules\u0000b')!)
    expect(old.rules.get('b')).toEqual(fresh.rules.get('b'))
  })
})
