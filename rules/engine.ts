/**
 * The rule engine's pure core: what a rule says about a reading (a verdict), and the alert
 * lifecycle that turns verdicts into alert events with debounce and hysteresis. No clock, no
 * Kafka: time is the readings' event time (or a watermark for absence), so the live job and a
 * backtest over the same input give the same events, with the same alert ids.
 */
import { createHash } from 'node:crypto'
import type { Alert, Device } from '../schemas/types.generated'
import { compileCondition, type Condition, type ConditionInput } from './expr'
import type { Rule } from './schema'

/** A reading as the rules see it: the enriched telemetry and the device's registry entry. */
export interface RuleReading extends ConditionInput {
  device?: Device | undefined
}

/** What one rule says about one reading. `hold`: inside the hysteresis band; `skip`: not applicable. */
export type Verdict =
  | { kind: 'trigger'; value: number | null; message: string }
  | { kind: 'clear'; value: number | null }
  | { kind: 'hold' }
  | { kind: 'skip'; error?: string }

/** Per (rule, device): debounce progress, the open alert, and what the rule kind remembers. */
export interface RuleDeviceState {
  pending: { count: number; since: number } | null
  /** The open alert: its worst value so far, the worst value last reported, its last event's time. */
  open: {
    alertId: string
    raisedAt: number
    worst: number | null
    reported: number | null
    lastEventTs: number
  } | null
  /** rate: the reading the last rate was measured from. */
  last?: { ts: number; value: number }
  /** anomaly (zscore): the most recent values, oldest first. */
  samples?: number[]
  /** anomaly (ewma): running mean and variance. */
  ewma?: { mean: number; variance: number; n: number }
  /** absence: the latest event time seen. */
  lastSeen?: number
}

/** What rate and anomaly rules remember of a device's signal (RuleDeviceState carries the same fields). */
export type SignalMemory = Pick<RuleDeviceState, 'last' | 'samples' | 'ewma'>

/**
 * The memory a rule judges by, as a key: rate and anomaly rules that watch the same metric the
 * same way (rate: the reading measured from, and minSpan; zscore/EWMA: method and window) share one memory per
 * device, fed once per reading, instead of one copy per rule. null for kinds that keep none
 * (absence keeps its last-seen time per rule: its alerts are raised without a reading, so a
 * shared time could not tell whose scope it came from).
 */
export function memoryKeyOf(rule: Rule): string | null {
  // minSpan only when set: the keys of rules written before it (kept in the job's state) hold.
  if (rule.kind === 'rate') return `rate\u0000${rule.metric}${rule.minSpan ? `\u0000${rule.minSpan}` : ''}`
  if (rule.kind === 'anomaly') return `${rule.method}\u0000${rule.metric}\u0000${rule.window}`
  return null
}

/** What a memory held before a reading, and the reading's value: what its rules judge by. */
export interface Recalled {
  v: number
  /** rate: the reading to measure from (undefined for the first); `skip` when this one is not
   * newer, or not `minSpan` after it: no rate is judged. */
  prev?: { ts: number; value: number }
  skip?: boolean
  /** anomaly: the baseline before this value. */
  mean?: number
  sd?: number
  n?: number
}

/**
 * Feeds a reading to a rate or anomaly memory and returns what it held before (null when the
 * reading lacks the metric or the rule keeps no memory). Called once per (memory, reading): every
 * rule sharing the memory judges by the same answer.
 */
export function recall(rule: Rule, mem: SignalMemory, r: RuleReading): Recalled | null {
  if (rule.kind !== 'rate' && rule.kind !== 'anomaly') return null
  const v = num(r, rule.metric)
  if (v === undefined) return null
  if (rule.kind === 'rate') {
    const prev = mem.last
    // Out of order, or too soon: no rate, and the reading to measure from stays.
    if (prev && (r.ts <= prev.ts || r.ts - prev.ts < rule.minSpan)) return { v, prev, skip: true }
    mem.last = { ts: r.ts, value: v }
    return { v, prev }
  }
  if (rule.method === 'zscore') {
    const xs = (mem.samples ??= [])
    const n = xs.length
    let sum = 0
    for (const x of xs) sum += x
    const mean = sum / Math.max(1, n)
    let sq = 0
    for (const x of xs) sq += (x - mean) * (x - mean)
    const sd = Math.sqrt(sq / Math.max(1, n - 1))
    xs.push(v)
    if (xs.length > rule.window) xs.shift()
    return { v, mean, sd, n }
  }
  const alpha = 2 / (rule.window + 1)
  const e = (mem.ewma ??= { mean: v, variance: 0, n: 0 })
  const before = { v, mean: e.mean, sd: Math.sqrt(e.variance), n: e.n }
  const d = v - e.mean
  e.mean += alpha * d
  e.variance = (1 - alpha) * (e.variance + alpha * d * d)
  e.n++
  return before
}

/** A rule ready to run: the validated rule and its compiled conditions. */
export interface CompiledRule {
  rule: Rule
  /** Whether the rule is enabled and its scope covers the reading. */
  applies: (r: RuleReading) => boolean
  when?: Condition
  clearWhen?: Condition
}

/** An `updated` event at most this often per alert (event time), so a long alert is not a storm. */
export const UPDATE_INTERVAL_MS = 60_000

/** Compiles a rule's conditions (throws ExpressionError on a bad one). */
export function compileRule(rule: Rule): CompiledRule {
  const applies = scopeFilter(rule)
  if (rule.kind !== 'condition') return { rule, applies }
  return {
    rule,
    applies,
    when: compileCondition(rule.when),
    clearWhen: rule.clearWhen ? compileCondition(rule.clearWhen) : undefined,
  }
}

/** A fresh state for a (rule, device). */
export function newRuleState(): RuleDeviceState {
  return { pending: null, open: null }
}

/** The deterministic alert id: the same rule, device and raise time always give the same id. */
export function alertIdOf(ruleId: string, deviceId: string, raisedAt: number): string {
  return createHash('sha256').update(`${ruleId}\u0000${deviceId}\u0000${raisedAt}`).digest('hex').slice(0, 32)
}

/**
 * Whether the rule is enabled and its scope covers the reading's device (the registry entry
 * first, then the reading's meta), with the scope's parts picked out once: it runs for every
 * rule on every reading.
 */
function scopeFilter(rule: Rule): (r: RuleReading) => boolean {
  if (!rule.enabled) return () => false
  const s = rule.scope
  if (s.tenant === undefined && s.site === undefined && s.model === undefined && !s.tags) return () => true
  const tags = Object.entries(s.tags ?? {})
  return (r) => {
    if (s.tenant !== undefined && (r.tenant ?? r.device?.tenant ?? null) !== s.tenant) return false
    if (s.site !== undefined && (r.device?.site ?? r.meta.site) !== s.site) return false
    if (s.model !== undefined && (r.device?.model ?? r.meta.model) !== s.model) return false
    for (const [k, v] of tags) if ((r.device?.tags[k] ?? r.meta[`tag.${k}`]) !== v) return false
    return true
  }
}

/** Verdicts and results that carry nothing, shared (judging runs for every rule on every reading). */
const SKIP: Verdict = Object.freeze({ kind: 'skip' })
const HOLD: Verdict = Object.freeze({ kind: 'hold' })
/** A clear verdict's value is only read when an alert is open (it goes into the `cleared` event). */
const CLEAR: Verdict = Object.freeze({ kind: 'clear', value: null })
const clear = (st: RuleDeviceState, value: number | null): Verdict =>
  st.open ? { kind: 'clear', value } : CLEAR
const NO_EVENTS: readonly Alert[] = Object.freeze([])

const num = (r: RuleReading, metric: string): number | undefined => {
  const v = r.metrics[metric]
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined
}

/**
 * What the rule says about a reading. Rate and anomaly rules judge by `recalled` (what their
 * shared memory held: `recall`), or, without it, feed and read the rule's own state as its
 * memory; absence updates the rule's last-seen time.
 */
export function judge(
  cr: CompiledRule,
  st: RuleDeviceState,
  r: RuleReading,
  recalled?: Recalled | null,
): Verdict {
  const rule = cr.rule
  switch (rule.kind) {
    case 'threshold': {
      const v = num(r, rule.metric)
      if (v === undefined) return SKIP
      if (rule.above !== undefined) {
        if (v > rule.above)
          return { kind: 'trigger', value: v, message: `${rule.metric} ${v} > ${rule.above}` }
        return v <= (rule.clear ?? rule.above) ? clear(st, v) : HOLD
      }
      if (v < rule.below!)
        return { kind: 'trigger', value: v, message: `${rule.metric} ${v} < ${rule.below}` }
      return v >= (rule.clear ?? rule.below!) ? clear(st, v) : HOLD
    }
    case 'range': {
      const v = num(r, rule.metric)
      if (v === undefined) return SKIP
      const lim = rule.limitsFrom === 'registry' ? r.device?.limits[rule.metric] : rule
      const min = lim?.min ?? undefined
      const max = lim?.max ?? undefined
      if (min === undefined && max === undefined) return SKIP
      if (min !== undefined && v < min)
        return { kind: 'trigger', value: v, message: `${rule.metric} ${v} below the range minimum ${min}` }
      if (max !== undefined && v > max)
        return { kind: 'trigger', value: v, message: `${rule.metric} ${v} above the range maximum ${max}` }
      const m = rule.clearMargin
      const inside = (min === undefined || v >= min + m) && (max === undefined || v <= max - m)
      return inside ? clear(st, v) : HOLD
    }
    case 'rate': {
      const m = recalled === undefined ? recall(rule, st, r) : recalled
      if (!m || m.skip || !m.prev) return SKIP
      const v = m.v
      const prev = m.prev
      const perMinute = ((v - prev.value) * 60_000) / (r.ts - prev.ts)
      const rounded = Math.round(perMinute * 1000) / 1000
      if (rule.risePerMinute !== undefined && perMinute > rule.risePerMinute)
        return {
          kind: 'trigger',
          value: rounded,
          message: `${rule.metric} rising ${rounded}/min > ${rule.risePerMinute}/min`,
        }
      if (rule.fallPerMinute !== undefined && -perMinute > rule.fallPerMinute)
        return {
          kind: 'trigger',
          value: rounded,
          message: `${rule.metric} falling ${-rounded}/min > ${rule.fallPerMinute}/min`,
        }
      return clear(st, rounded)
    }
    case 'battery': {
      const v = num(r, rule.metric)
      if (v === undefined) return SKIP
      if (v < rule.below)
        return { kind: 'trigger', value: v, message: `${rule.metric} ${v}% < ${rule.below}%` }
      return v >= (rule.clear ?? Math.min(100, rule.below + 5)) ? clear(st, v) : HOLD
    }
    case 'anomaly': {
      const m = recalled === undefined ? recall(rule, st, r) : recalled
      if (!m) return SKIP
      const { v, mean, sd, n } = m as Required<Recalled>
      if (n < rule.minSamples || sd === 0) return SKIP
      const z = Math.abs(v - mean) / sd
      if (z > rule.threshold)
        return {
          kind: 'trigger',
          value: v,
          message: `${rule.metric} ${v} is ${Math.round(z * 10) / 10} standard deviations from ${Math.round(mean * 1000) / 1000}`,
        }
      return clear(st, v)
    }
    case 'absence':
      st.lastSeen = Math.max(st.lastSeen ?? r.ts, r.ts)
      return clear(st, null)
    case 'condition': {
      const w = cr.when!(r)
      if (!w.ok) return { kind: 'skip', error: w.error }
      if (w.value) return { kind: 'trigger', value: null, message: `${rule.when} holds` }
      if (!cr.clearWhen) return clear(st, null)
      const c = cr.clearWhen(r)
      if (!c.ok) return { kind: 'skip', error: c.error }
      return c.value ? clear(st, null) : HOLD
    }
  }
}

/** Where an alert event comes from. */
export interface Subject {
  deviceId: string
  tenant: string | null
  /** Event time, ms. */
  ts: number
}

const metricOf = (rule: Rule): string | null => ('metric' in rule ? rule.metric : null)

/** One alert event of `rule` for `at`. */
function alertEvent(
  rule: Rule,
  at: Subject,
  event: Alert['event'],
  value: number | null,
  message: string,
  alert: { alertId: string; raisedAt: number },
): Alert {
  return {
    alertId: alert.alertId,
    event,
    ruleId: rule.id,
    ruleName: rule.name ?? rule.id,
    deviceId: at.deviceId,
    tenant: at.tenant,
    severity: rule.severity,
    ts: at.ts,
    raisedAt: alert.raisedAt,
    metric: metricOf(rule),
    value,
    message,
  }
}

/** Is `v` worse than `worst` for this rule (further past the threshold)? */
function worse(rule: Rule, v: number, worst: number): boolean {
  if (rule.kind === 'threshold' && rule.below !== undefined) return v < worst
  if (rule.kind === 'battery') return v < worst
  if (rule.kind === 'rate' || rule.kind === 'anomaly' || rule.kind === 'range')
    return Math.abs(v) > Math.abs(worst)
  return v > worst
}

/**
 * The alert lifecycle: debounce (`for`) before raising, one open alert per (rule, device),
 * `updated` with the worst value when it got worse (at most once per UPDATE_INTERVAL_MS), `cleared` on a
 * clear verdict; `hold` (the hysteresis band) changes nothing. Returns the events.
 */
export function applyVerdict(
  cr: CompiledRule,
  st: RuleDeviceState,
  v: Verdict,
  at: Subject,
): readonly Alert[] {
  const rule = cr.rule
  switch (v.kind) {
    case 'skip':
      return NO_EVENTS
    case 'hold':
      if (!st.open) st.pending = null
      return NO_EVENTS
    case 'clear': {
      st.pending = null
      const open = st.open
      if (!open) return NO_EVENTS
      st.open = null
      return [alertEvent(rule, at, 'cleared', v.value, `${rule.name ?? rule.id}: back to normal`, open)]
    }
    case 'trigger': {
      const open = st.open
      if (open) {
        if (v.value !== null && (open.worst === null || worse(rule, v.value, open.worst)))
          open.worst = v.value
        if (open.worst === open.reported || at.ts - open.lastEventTs < UPDATE_INTERVAL_MS) return NO_EVENTS
        open.reported = open.worst
        open.lastEventTs = at.ts
        return [
          alertEvent(rule, at, 'updated', open.worst, `${v.message} (worst so far: ${open.worst})`, open),
        ]
      }
      const p = (st.pending = st.pending ?? { count: 0, since: at.ts })
      p.count++
      const d = rule.for
      const met = !d || (d.readings !== undefined ? p.count >= d.readings : at.ts - p.since >= d.duration!)
      if (!met) return NO_EVENTS
      st.pending = null
      const alertId = alertIdOf(rule.id, at.deviceId, at.ts)
      st.open = { alertId, raisedAt: at.ts, worst: v.value, reported: v.value, lastEventTs: at.ts }
      const why = !d
        ? ''
        : d.readings !== undefined
          ? ` for ${d.readings} readings`
          : ` for ${d.duration! / 1000} s`
      return [alertEvent(rule, at, 'raised', v.value, `${v.message}${why}`, st.open)]
    }
  }
}

/** A reading through one rule: scope, verdict, lifecycle. */
export function evaluateReading(
  cr: CompiledRule,
  st: RuleDeviceState,
  r: RuleReading,
): { events: readonly Alert[]; verdict: Verdict } {
  if (!cr.applies(r)) return { events: NO_EVENTS, verdict: SKIP }
  const verdict = judge(cr, st, r)
  return {
    events: applyVerdict(cr, st, verdict, {
      deviceId: r.deviceId,
      tenant: r.tenant ?? r.device?.tenant ?? null,
      ts: r.ts,
    }),
    verdict,
  }
}

/**
 * Absence rules at event time `now` (a watermark): a device silent for `after` raises
 * "offline" (no debounce: the silence is the debounce); a reading clears it.
 */
export function evaluateSilence(
  cr: CompiledRule,
  st: RuleDeviceState,
  deviceId: string,
  tenant: string | null,
  now: number,
): Alert[] {
  const rule = cr.rule
  if (rule.kind !== 'absence' || !rule.enabled || st.open || st.lastSeen === undefined) return []
  if (now - st.lastSeen < rule.after) return []
  const raisedAt = st.lastSeen + rule.after
  const alertId = alertIdOf(rule.id, deviceId, raisedAt)
  st.pending = null
  st.open = { alertId, raisedAt, worst: null, reported: null, lastEventTs: raisedAt }
  return [
    alertEvent(
      rule,
      { deviceId, tenant, ts: raisedAt },
      'raised',
      null,
      `no reading for ${rule.after / 1000} s (device offline)`,
      { alertId, raisedAt },
    ),
  ]
}
