import type { RuleDeviceState, SignalMemory } from '../../rules/engine'
import { StateReader, StateWriter } from '../runtime/state-bytes'

/** A device's rule states as stored in the rules job's changelog (one entry per device). */
export interface StoredDeviceRules {
  tenant: string | null
  /** By rule id: the fields in use only. */
  rules: Record<string, Partial<RuleDeviceState>>
  /** Shared rate and anomaly memories, by memory key. */
  memory: Record<string, SignalMemory>
}

/**
 * The changelog value of a device's rule states, in binary. A busy device rewrites its entry
 * on every reading (its rate and anomaly memories move each time), so this runs once per
 * reading: JSON.stringify was the largest single cost of the rules job's own code, and the
 * numbers it wrote as text are written here as they are held (IEEE doubles, so a restored state
 * judges exactly as the one written). An anomaly window whose values are all exact as 32-bit
 * floats (whole readings, most sensors' steps) takes 4 bytes a value instead of 8.
 *
 * Layout: u8 version (1); tenant (u8 0: null, 1: string); varint rule count, then per rule its
 * id and a state; varint memory count, then per memory its key and a state. A string is a
 * varint byte length + UTF-8. A state is a u8 of flags (pending, open, last, samples, ewma,
 * lastSeen), then each field present, in that order, as f64s (little-endian): pending count
 * and since; open alert id (string), u8 null flags (worst, reported), raisedAt, worst,
 * reported (when not null), lastEventTs; last ts and value; samples (varint count, u8 width
 * 4|8, values); ewma mean, variance, n; lastSeen.
 *
 * Entries written before this format are JSON (they start with `{`) and still decode.
 */
export const RULE_STATE_VERSION = 1

const PENDING = 1
const OPEN = 2
const LAST = 4
const SAMPLES = 8
const EWMA = 16
const LAST_SEEN = 32

/** Encodes a device's rule states (by rule id) and memories (by key), empty ones already left out. */
export function encodeDeviceRules(
  tenant: string | null,
  rules: ReadonlyMap<string, RuleDeviceState>,
  memory: ReadonlyMap<string, SignalMemory>,
): Buffer {
  const w = writer.reset()
  w.u8(RULE_STATE_VERSION)
  if (tenant === null) w.u8(0)
  else {
    w.u8(1)
    w.str(tenant)
  }
  w.varint(rules.size)
  for (const [id, st] of rules) {
    w.str(id)
    writeState(w, st)
  }
  w.varint(memory.size)
  for (const [key, m] of memory) {
    w.str(key)
    writeState(w, m)
  }
  return w.take()
}

const writer = new StateWriter()

/** Decodes a stored entry: this binary format, or the JSON written before it. */
export function decodeDeviceRules(value: Buffer): StoredDeviceRules {
  if (value[0] === 0x7b) {
    const o = JSON.parse(value.toString()) as StoredDeviceRules
    return { tenant: o.tenant, rules: o.rules, memory: o.memory ?? {} }
  }
  const r = new StateReader(value, 'rule state')
  const version = r.u8()
  if (version !== RULE_STATE_VERSION) r.fail(`unknown version ${version}`)
  const tenant = r.u8() === 0 ? null : r.str()
  const rules: Record<string, Partial<RuleDeviceState>> = {}
  for (let n = r.varint(); n > 0; n--) {
    const id = r.str()
    rules[id] = readState(r)
  }
  const memory: Record<string, SignalMemory> = {}
  for (let n = r.varint(); n > 0; n--) {
    const key = r.str()
    memory[key] = readState(r)
  }
  r.end()
  return { tenant, rules, memory }
}

function writeState(w: StateWriter, st: Partial<RuleDeviceState>): void {
  const flags =
    (st.pending ? PENDING : 0) |
    (st.open ? OPEN : 0) |
    (st.last ? LAST : 0) |
    (st.samples ? SAMPLES : 0) |
    (st.ewma ? EWMA : 0) |
    (st.lastSeen !== undefined ? LAST_SEEN : 0)
  w.u8(flags)
  if (st.pending) {
    w.f64(st.pending.count)
    w.f64(st.pending.since)
  }
  const open = st.open
  if (open) {
    w.str(open.alertId)
    w.u8((open.worst === null ? 1 : 0) | (open.reported === null ? 2 : 0))
    w.f64(open.raisedAt)
    if (open.worst !== null) w.f64(open.worst)
    if (open.reported !== null) w.f64(open.reported)
    w.f64(open.lastEventTs)
  }
  if (st.last) {
    w.f64(st.last.ts)
    w.f64(st.last.value)
  }
  const xs = st.samples
  if (xs) {
    w.varint(xs.length)
    let narrow = true
    for (let i = 0; i < xs.length; i++) if (Math.fround(xs[i]!) !== xs[i]) narrow = false
    w.u8(narrow ? 4 : 8)
    for (let i = 0; i < xs.length; i++)
      if (narrow) w.f32(xs[i]!)
      else w.f64(xs[i]!)
  }
  if (st.ewma) {
    w.f64(st.ewma.mean)
    w.f64(st.ewma.variance)
    w.f64(st.ewma.n)
  }
  if (st.lastSeen !== undefined) w.f64(st.lastSeen)
}

function readState(r: StateReader): Partial<RuleDeviceState> {
  const flags = r.u8()
  const st: Partial<RuleDeviceState> = {}
  if (flags & PENDING) st.pending = { count: r.f64(), since: r.f64() }
  if (flags & OPEN) {
    const alertId = r.str()
    const nulls = r.u8()
    const raisedAt = r.f64()
    const worst = nulls & 1 ? null : r.f64()
    const reported = nulls & 2 ? null : r.f64()
    st.open = { alertId, raisedAt, worst, reported, lastEventTs: r.f64() }
  }
  if (flags & LAST) st.last = { ts: r.f64(), value: r.f64() }
  if (flags & SAMPLES) {
    const n = r.varint()
    const width = r.u8()
    if (width !== 4 && width !== 8) r.fail(`bad sample width ${width}`)
    const xs: number[] = new Array<number>(n)
    for (let i = 0; i < n; i++) xs[i] = width === 4 ? r.f32() : r.f64()
    st.samples = xs
  }
  if (flags & EWMA) st.ewma = { mean: r.f64(), variance: r.f64(), n: r.f64() }
  if (flags & LAST_SEEN) st.lastSeen = r.f64()
  return st
}
