import type { AvroCodec } from '../../core/envelope/codec'
import type { Telemetry } from '../../core/envelope/telemetry'
import type { InRecord, OutRecord } from '../../core/kafka/log'
import {
  applyVerdict,
  evaluateSilence,
  judge,
  memoryKeyOf,
  newRuleState,
  recall,
  type CompiledRule,
  type Recalled,
  type RuleDeviceState,
  type RuleReading,
  type SignalMemory,
} from '../../rules/engine'
import type { RuleMetrics } from '../../rules/metrics'
import type { RuleSource } from '../../rules/table'
import type { Alert, Device } from '../../schemas/types.generated'
import {
  newWatermark,
  observe,
  watermarkAt,
  type WatermarkOptions,
  type WatermarkState,
} from '../operators/watermark'
import { decodeReading } from '../runtime/readings'
import { deadLetterRecord, defineJob, type StepResult, type StreamJob } from '../runtime/job'
import { applyDeviceRecord, restoreDevice } from './device-table'
import { decodeDeviceRules, encodeDeviceRules } from './rule-state-codec'

/** Settings of the rules job. */
export interface RulesJobOptions {
  enrichedTopic: string
  devicesTopic: string
  alertsTopic: string
  deadletterTopic: string
  /** The rules in force (a RuleTable following `iot.rules`, or a fixed list for a backtest). */
  table: RuleSource
  /** Event time: absence rules judge silence against the partition's watermark. */
  time: WatermarkOptions
  telemetry: AvroCodec<Telemetry>
  device: AvroCodec<Device>
  alert: AvroCodec<Alert>
  metrics?: RuleMetrics
}

/**
 * A device's rule states (by rule id: debounce, open alert, absence's last-seen), the signal
 * memories its rate and anomaly rules share (by memoryKeyOf), and its tenant (for absence
 * alerts raised on a watermark).
 */
interface DeviceRules {
  tenant: string | null
  byRule: Map<string, RuleDeviceState>
  memory: Map<string, SignalMemory>
}

/** Per input partition: the registry copy, the rule states, the watermark. */
export interface RulesState {
  devices: Map<string, Device>
  /** Rule states by device, then rule id (lookups with the strings at hand, no key building). */
  rules: Map<string, DeviceRules>
  /** Rule states and signal memories held (the state-size gauge). */
  ruleStates: number
  /** Devices whose rule states have an entry in the changelog (a device left with none gets a tombstone). */
  written: Set<string>
  wm: WatermarkState
  /**
   * No absence rule can raise before the watermark reaches this: a lower bound of every
   * device's `lastSeen + after`, lowered as readings arrive and recomputed by each full scan,
   * so `tick` does not walk every device's rule states five times a second for nothing.
   * -Infinity: unknown (after a restore or a change of the rules), scan at the next tick.
   */
  silenceDue: number
  /** The rule list the bound was computed for. */
  silenceFor?: readonly CompiledRule[]
}

const DEVICE = 'device\u0000'
/** One changelog entry per device holds all its rule states: a reading that moves 30 rules'
 * memory writes one record, not 30 (records, not bytes, were the job's main cost). Encoded by
 * rule-state-codec.ts. */
const RULES = 'rules\u0000'
const WATERMARK = '__watermark'
/** The memory keys of a rule list: per rule (in order), by rule id, and the set in use. */
interface MemoryKeys {
  perRule: (string | null)[]
  byRuleId: Map<string, string | null>
  inUse: Set<string>
}
/** Per rule list (RuleSource.list() keeps its array until the rules change), computed once. */
const memoryKeys = new WeakMap<CompiledRule[], MemoryKeys>()
function memoryKeysOf(rules: CompiledRule[]): MemoryKeys {
  let k = memoryKeys.get(rules)
  if (!k) {
    const perRule = rules.map((cr) => memoryKeyOf(cr.rule))
    k = {
      perRule,
      byRuleId: new Map(rules.map((cr, i) => [cr.rule.id, perRule[i]!])),
      inUse: new Set(perRule.filter((x): x is string => x !== null)),
    }
    memoryKeys.set(rules, k)
  }
  return k
}

const isEmptyMemory = (m: SignalMemory) => !m.last && !m.samples && !m.ewma

const isEmpty = (st: RuleDeviceState) =>
  st.pending === null && st.open === null && !st.last && !st.samples && !st.ewma && st.lastSeen === undefined

/** The absence rules of a rule list by id, built once per list (the table hands out the same
 * array until the rules change). */
const absenceByList = new WeakMap<readonly CompiledRule[], Map<string, CompiledRule>>()
function absenceRules(list: readonly CompiledRule[]): Map<string, CompiledRule> {
  let m = absenceByList.get(list)
  if (!m) {
    m = new Map(list.filter((cr) => cr.rule.kind === 'absence').map((cr) => [cr.rule.id, cr]))
    absenceByList.set(list, m)
  }
  return m
}

/**
 * Evaluates the rules in force on every enriched reading (with the device's registry entry,
 * co-partitioned from `iot.devices`) and writes alert events to `iot.alerts`: one open alert
 * per (rule, device), deterministic alert ids, rule state in the changelog, everything in the
 * runner's transactions, so a replay, a crash or a rebalance never duplicates an alert.
 * Absence rules are judged on the partition's watermark (idle partitions advance by the idle
 * timeout).
 */
export function rulesJob(o: RulesJobOptions): StreamJob<RulesState> {
  const dead = (r: InRecord, code: string, reason: string) =>
    deadLetterRecord(o.deadletterTopic, 'rules', r, code, reason)
  const readingCheck = {
    job: 'rules',
    deadletterTopic: o.deadletterTopic,
    // What a condition reads (ConditionInput); seq, receivedAt and source are skipped.
    telemetry: o.telemetry.projection(['deviceId', 'tenant', 'ts', 'metrics', 'meta']),
    time: o.time,
  }
  const alertRecord = (a: Alert): OutRecord => {
    o.metrics?.events.inc({ rule: a.ruleId, event: a.event })
    return { topic: o.alertsTopic, key: a.deviceId, value: o.alert.encode(a), timestamp: a.ts }
  }
  /** Writes a device's rule states to the changelog (empty ones dropped; none left: a tombstone). */
  const persist = (state: RulesState, deviceId: string, changelog: StepResult['changelog']) => {
    const dr = state.rules.get(deviceId)
    if (dr) {
      for (const [ruleId, st] of dr.byRule) {
        if (!isEmpty(st)) continue
        dr.byRule.delete(ruleId)
        state.ruleStates--
      }
      const { inUse } = memoryKeysOf(o.table.list())
      for (const [key, m] of dr.memory) {
        if (inUse.has(key) && !isEmptyMemory(m)) continue
        dr.memory.delete(key) // no rule reads it any more (removed, or now watching otherwise)
        state.ruleStates--
      }
    }
    const key = `${RULES}${deviceId}`
    if (!dr || dr.byRule.size + dr.memory.size === 0) {
      state.rules.delete(deviceId)
      if (state.written.delete(deviceId)) changelog.set(key, null)
      return
    }
    state.written.add(deviceId)
    changelog.set(key, encodeDeviceRules(dr.tenant, dr.byRule, dr.memory))
  }
  const deviceRules = (state: RulesState, deviceId: string, tenant: string | null): DeviceRules => {
    let dr = state.rules.get(deviceId)
    if (!dr) state.rules.set(deviceId, (dr = { tenant, byRule: new Map(), memory: new Map() }))
    return dr
  }
  /** A rule's state for a device being restored (made when missing). */
  const stateOf = (state: RulesState, dr: DeviceRules, ruleId: string): RuleDeviceState => {
    let st = dr.byRule.get(ruleId)
    if (!st) {
      dr.byRule.set(ruleId, (st = newRuleState()))
      state.ruleStates++
    }
    return st
  }
  const watermarkEntry = (state: RulesState) => Buffer.from(JSON.stringify(state.wm.maxEventTs))

  return defineJob<RulesState>({
    name: 'rules',
    inputTopics: [o.devicesTopic, o.enrichedTopic],
    tableTopics: [o.devicesTopic],
    outputTopics: [o.alertsTopic, o.deadletterTopic],
    initState: () => ({
      devices: new Map(),
      rules: new Map(),
      ruleStates: 0,
      written: new Set(),
      wm: newWatermark(),
      silenceDue: Number.NEGATIVE_INFINITY,
    }),
    restore(state, key, value) {
      if (key.startsWith(DEVICE)) return restoreDevice(state.devices, key.slice(DEVICE.length), value)
      if (key === WATERMARK) {
        const max = JSON.parse(value.toString()) as number | null
        if (max !== null) state.wm = observe(state.wm, max, Date.now(), o.time)
        return
      }
      if (!key.startsWith(RULES)) return
      state.silenceDue = Number.NEGATIVE_INFINITY
      const deviceId = key.slice(RULES.length)
      const stored = decodeDeviceRules(value)
      const dr = deviceRules(state, deviceId, stored.tenant)
      const setMemory = (key: string, m: SignalMemory) => {
        if (dr.memory.has(key) || isEmptyMemory(m)) return
        dr.memory.set(key, m)
        state.ruleStates++
      }
      for (const [key, m] of Object.entries(stored.memory)) setMemory(key, m)
      const { byRuleId } = memoryKeysOf(o.table.list())
      for (const [ruleId, { last, samples, ewma, ...st }] of Object.entries(stored.rules)) {
        // Entries written before memories were shared keep rate and anomaly memory per rule.
        const key = byRuleId.get(ruleId) ?? null
        if (key !== null) setMemory(key, { last, samples, ewma })
        if (Object.keys(st).length > 0) Object.assign(stateOf(state, dr, ruleId), st)
      }
      state.written.add(deviceId)
    },
    async process(state, records, now) {
      const outputs: OutRecord[] = []
      const changelog = new Map<string, Buffer | null>()
      const rules = o.table.list()
      const keys = memoryKeysOf(rules).perRule
      /** What each memory held before the current reading (fed once per reading, shared by its rules). */
      const recalled = new Map<string, Recalled | null>()
      /** Devices whose rule states may have changed in this batch (written once, at its end). */
      const dirty = new Set<string>()
      /** A fresh state for a rule that has none for the device; kept only if the reading changed it. */
      let scratch = newRuleState()
      let evaluations = 0
      for (const r of records) {
        if (r.topic === o.devicesTopic) {
          const change = await applyDeviceRecord(state.devices, r, o.device, changelog, DEVICE)
          if (change.kind === 'invalid') outputs.push(dead(r, 'FS_JOBS_DECODE', change.error))
          continue
        }
        const decoded = await decodeReading(r, now, readingCheck)
        if ('dead' in decoded) {
          outputs.push(decoded.dead)
          continue
        }
        const e = decoded.reading
        state.wm = observe(state.wm, e.ts, now, o.time)
        const device = state.devices.get(e.deviceId)
        const reading: RuleReading = e // the decoded reading is this batch's own: no copy
        reading.device = device
        const tenant = e.tenant ?? device?.tenant ?? null
        let dr = state.rules.get(e.deviceId)
        let touched = dr !== undefined && dr.tenant !== tenant
        if (dr) dr.tenant = tenant
        const at = { deviceId: e.deviceId, tenant, ts: e.ts }
        let evaluated = 0
        recalled.clear()
        for (let i = 0; i < rules.length; i++) {
          const cr = rules[i]!
          if (!cr.applies(reading)) continue
          const ruleId = cr.rule.id
          const key = keys[i]!
          let memo: Recalled | null | undefined
          if (key !== null) {
            memo = recalled.get(key)
            if (memo === undefined) {
              const known = dr?.memory.get(key)
              const mem = known ?? {}
              memo = recall(cr.rule, mem, reading)
              recalled.set(key, memo)
              if (memo !== null) {
                touched = true
                if (!known) {
                  dr ??= deviceRules(state, e.deviceId, tenant)
                  dr.memory.set(key, mem)
                  state.ruleStates++
                }
              }
            }
          }
          // Most devices hold no rule state at all most of the time (no alert open or pending).
          const st = (dr !== undefined && dr.byRule.size > 0 ? dr.byRule.get(ruleId) : undefined) ?? scratch
          const hadPending = st.pending !== null
          const verdict = judge(cr, st, reading, memo)
          const events = applyVerdict(cr, st, verdict, at)
          evaluated++
          if (cr.rule.kind === 'absence' && st.lastSeen !== undefined) {
            const due = st.lastSeen + cr.rule.after
            if (due < state.silenceDue) state.silenceDue = due
          }
          if (verdict.kind === 'skip' && verdict.error) o.metrics?.errors.inc({ rule: ruleId })
          if (verdict.kind === 'trigger' && events.length === 0 && !st.open)
            o.metrics?.debounced.inc({ rule: ruleId })
          for (let j = 0; j < events.length; j++) outputs.push(alertRecord(events[j]!))
          if (st === scratch) {
            if (isEmpty(st)) continue // nothing to remember
            dr ??= deviceRules(state, e.deviceId, tenant)
            dr.byRule.set(ruleId, st)
            state.ruleStates++
            scratch = newRuleState()
            touched = true
            continue
          }
          // Only what may have changed goes to the changelog, once per batch.
          touched ||=
            events.length > 0 ||
            cr.rule.kind === 'absence' || // its last-seen time moves with every reading
            hadPending ||
            st.pending !== null ||
            (st.open !== null && verdict.kind === 'trigger')
        }
        if (touched) dirty.add(e.deviceId)
        evaluations += evaluated
      }
      if (evaluations > 0) o.metrics?.evaluations.inc(evaluations)
      for (const deviceId of dirty) persist(state, deviceId, changelog)
      changelog.set(WATERMARK, watermarkEntry(state))
      return { outputs, changelog }
    },
    tick(state, now) {
      const before = state.wm.watermark
      state.wm = watermarkAt(state.wm, now, o.time)
      const outputs: OutRecord[] = []
      const changelog = new Map<string, Buffer | null>()
      const list = o.table.list()
      const absence = absenceRules(list)
      if (state.silenceFor !== list) {
        state.silenceFor = list
        state.silenceDue = Number.NEGATIVE_INFINITY
      }
      if (absence.size === 0 || !Number.isFinite(state.wm.watermark)) return { outputs, changelog }
      const wm = state.wm.watermark
      if (wm >= state.silenceDue) {
        let next = Number.POSITIVE_INFINITY
        for (const [deviceId, dr] of state.rules) {
          let raised = false
          for (const [ruleId, st] of dr.byRule) {
            const cr = absence.get(ruleId)
            if (!cr) continue
            const events = evaluateSilence(cr, st, deviceId, dr.tenant, wm)
            for (const a of events) outputs.push(alertRecord(a))
            raised ||= events.length > 0
            // Still silent-able: it raises at lastSeen + after (an open one waits for a reading).
            if (!st.open && st.lastSeen !== undefined && cr.rule.kind === 'absence')
              next = Math.min(next, st.lastSeen + cr.rule.after)
          }
          if (raised) persist(state, deviceId, changelog)
        }
        state.silenceDue = next
      }
      if (state.wm.watermark !== before) changelog.set(WATERMARK, watermarkEntry(state))
      return { outputs, changelog }
    },
    watermark: (state) => state.wm.watermark,
    stateSize: (state) => state.devices.size + state.ruleStates,
  })
}
