import type { AvroCodec } from '../../core/envelope/codec'
import type { Telemetry } from '../../core/envelope/telemetry'
import type { InRecord, OutRecord } from '../../core/kafka/log'
import {
  evaluateReading,
  evaluateSilence,
  inScope,
  newRuleState,
  type CompiledRule,
  type RuleDeviceState,
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

/** A (rule, device) state as the changelog keeps it: with the device's tenant, for absence alerts. */
interface StoredRuleState {
  st: RuleDeviceState
  tenant: string | null
}

/** Per input partition: the registry copy, the rule states, the watermark. */
export interface RulesState {
  devices: Map<string, Device>
  /** Rule states by device, then rule id (lookups with the strings at hand, no key building). */
  rules: Map<string, Map<string, StoredRuleState>>
  ruleStates: number
  /** What the changelog holds per rule-state key, to write only changes. */
  written: Map<string, string>
  wm: WatermarkState
}

const DEVICE = 'device\u0000'
const RULE = 'rule\u0000'
const WATERMARK = '__watermark'
const SEP = '\u0000'
/** Rule kinds whose state changes with every reading (previous value, baseline, last seen). */
const MEMORY_KINDS = new Set(['rate', 'anomaly', 'absence'])

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
    telemetry: o.telemetry,
    time: o.time,
  }
  const alertRecord = (a: Alert): OutRecord => {
    o.metrics?.events.inc({ rule: a.ruleId, event: a.event })
    return { topic: o.alertsTopic, key: a.deviceId, value: o.alert.encode(a), timestamp: a.ts }
  }
  /** Writes a rule state to the changelog when it differs from what is there; empty states are deleted. */
  const persist = (
    state: RulesState,
    deviceId: string,
    ruleId: string,
    s: StoredRuleState,
    changelog: StepResult['changelog'],
  ) => {
    const key = `${RULE}${ruleId}${SEP}${deviceId}`
    const st = s.st
    const empty =
      st.pending === null &&
      st.open === null &&
      !st.last &&
      !st.samples &&
      !st.ewma &&
      st.lastSeen === undefined
    if (empty) {
      const byRule = state.rules.get(deviceId)
      if (byRule?.delete(ruleId)) state.ruleStates--
      if (byRule?.size === 0) state.rules.delete(deviceId)
      if (state.written.delete(key)) changelog.set(key, null)
      return
    }
    const json = JSON.stringify(s)
    if (state.written.get(key) === json) return
    state.written.set(key, json)
    changelog.set(key, Buffer.from(json))
  }
  const stateOf = (state: RulesState, deviceId: string, ruleId: string, tenant: string | null) => {
    let byRule = state.rules.get(deviceId)
    if (!byRule) state.rules.set(deviceId, (byRule = new Map()))
    let stored = byRule.get(ruleId)
    if (!stored) {
      byRule.set(ruleId, (stored = { st: newRuleState(), tenant }))
      state.ruleStates++
    }
    return stored
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
      written: new Map(),
      wm: newWatermark(),
    }),
    restore(state, key, value) {
      if (key.startsWith(DEVICE)) return restoreDevice(state.devices, key.slice(DEVICE.length), value)
      if (key === WATERMARK) {
        const max = JSON.parse(value.toString()) as number | null
        if (max !== null) state.wm = observe(state.wm, max, Date.now(), o.time)
        return
      }
      const [, ruleId, deviceId] = key.split(SEP) as [string, string, string]
      const restored = JSON.parse(value.toString()) as StoredRuleState
      const stored = stateOf(state, deviceId, ruleId, restored.tenant)
      stored.st = restored.st
      state.written.set(key, value.toString())
    },
    async process(state, records, now) {
      const outputs: OutRecord[] = []
      const changelog = new Map<string, Buffer | null>()
      const rules = o.table.list()
      /** Rule states that may have changed in this batch, by device. */
      const dirty = new Map<string, Set<string>>()
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
        const reading = { ...e, device }
        const tenant = e.tenant ?? device?.tenant ?? null
        let evaluations = 0
        let changed: Set<string> | undefined
        for (const cr of rules) {
          if (!cr.rule.enabled || !inScope(cr.rule, reading)) continue
          const ruleId = cr.rule.id
          const stored = stateOf(state, e.deviceId, ruleId, tenant)
          const hadPending = stored.st.pending !== null
          let touched = stored.tenant !== tenant
          stored.tenant = tenant
          const { events, verdict } = evaluateReading(cr, stored.st, reading)
          evaluations++
          if (verdict.kind === 'skip' && verdict.error) o.metrics?.errors.inc({ rule: ruleId })
          if (verdict.kind === 'trigger' && events.length === 0 && !stored.st.open)
            o.metrics?.debounced.inc({ rule: ruleId })
          for (const a of events) outputs.push(alertRecord(a))
          // Only what may have changed goes to the changelog, once per batch.
          touched ||=
            events.length > 0 ||
            MEMORY_KINDS.has(cr.rule.kind) ||
            hadPending ||
            stored.st.pending !== null ||
            (stored.st.open !== null && verdict.kind === 'trigger')
          if (touched) {
            if (!changed) {
              changed = dirty.get(e.deviceId)
              if (!changed) dirty.set(e.deviceId, (changed = new Set()))
            }
            changed.add(ruleId)
          }
        }
        o.metrics?.evaluations.inc(evaluations)
      }
      for (const [deviceId, ruleIds] of dirty)
        for (const ruleId of ruleIds) {
          const stored = state.rules.get(deviceId)?.get(ruleId)
          if (stored) persist(state, deviceId, ruleId, stored, changelog)
        }
      changelog.set(WATERMARK, watermarkEntry(state))
      return { outputs, changelog }
    },
    tick(state, now) {
      const before = state.wm.watermark
      state.wm = watermarkAt(state.wm, now, o.time)
      const outputs: OutRecord[] = []
      const changelog = new Map<string, Buffer | null>()
      const absence = new Map<string, CompiledRule>(
        o.table
          .list()
          .filter((cr) => cr.rule.kind === 'absence')
          .map((cr) => [cr.rule.id, cr]),
      )
      if (absence.size === 0 || !Number.isFinite(state.wm.watermark)) return { outputs, changelog }
      for (const [deviceId, byRule] of state.rules)
        for (const [ruleId, stored] of byRule) {
          const cr = absence.get(ruleId)
          if (!cr) continue
          const events = evaluateSilence(cr, stored.st, deviceId, stored.tenant, state.wm.watermark)
          if (events.length === 0) continue
          for (const a of events) outputs.push(alertRecord(a))
          persist(state, deviceId, ruleId, stored, changelog)
        }
      if (state.wm.watermark !== before) changelog.set(WATERMARK, watermarkEntry(state))
      return { outputs, changelog }
    },
    watermark: (state) => state.wm.watermark,
    stateSize: (state) => state.devices.size + state.ruleStates,
  })
}
