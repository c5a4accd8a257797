import type { OpenWindow } from '../operators/window-aggregate'
import { StateReader, StateWriter } from '../runtime/state-bytes'

/**
 * The rollup job's changelog values: a device's open windows, per metric, one list per rollup
 * output (null: none open there). Rewritten for every reading of the device, so binary rather
 * than JSON (JSON.stringify of these lists was ~8% of `fleetstream up`'s CPU); numbers are IEEE
 * doubles, so a restored window aggregates exactly as the written one.
 *
 * Layout of a device's entry (version 2): u8 2; varint metric count; per metric its name (varint
 * byte length, UTF-8), then its outputs as below.
 * Outputs: varint output count; per output a varint window count (0: null), then per window f64s
 * start, end, closesAt, a u8 fired flag, and the aggregate's f64s count, min, max, sum, first,
 * firstTs, last, lastTs (all little-endian).
 *
 * Before version 2 an entry held one (device, metric) key: u8 1 and its outputs (version 1), or
 * JSON (starts with `[`); both still decode (decodeOpenWindows).
 */
export const ROLLUP_STATE_VERSION = 2
const KEY_STATE_VERSION = 1

/** One metric of a device: its open windows per output. */
export type MetricWindows = readonly [metric: string, perOutput: readonly (readonly OpenWindow[] | null)[]]

const writer = new StateWriter()

/** Encodes a device's open windows, per metric and output. */
export function encodeDeviceWindows(metrics: readonly MetricWindows[]): Buffer {
  const w = writer.reset()
  w.u8(ROLLUP_STATE_VERSION)
  w.varint(metrics.length)
  for (const [metric, perOutput] of metrics) {
    w.str(metric)
    writeOutputs(w, perOutput)
  }
  return w.take()
}

/** Decodes a device's entry (version 2). */
export function decodeDeviceWindows(value: Buffer): [string, (OpenWindow[] | null)[]][] {
  const r = new StateReader(value, 'rollup state')
  const version = r.u8()
  if (version !== ROLLUP_STATE_VERSION) r.fail(`unknown version ${version}`)
  const out: [string, (OpenWindow[] | null)[]][] = []
  for (let n = r.varint(); n > 0; n--) {
    const metric = r.str()
    out.push([metric, readOutputs(r)])
  }
  r.end()
  return out
}

/** Encodes one (device, metric) key's open windows per output: version 1, kept for tests of old changelogs. */
export function encodeOpenWindows(perOutput: readonly (readonly OpenWindow[] | null)[]): Buffer {
  const w = writer.reset()
  w.u8(KEY_STATE_VERSION)
  writeOutputs(w, perOutput)
  return w.take()
}

function writeOutputs(w: StateWriter, perOutput: readonly (readonly OpenWindow[] | null)[]): void {
  w.varint(perOutput.length)
  for (const windows of perOutput) {
    w.varint(windows?.length ?? 0)
    for (const x of windows ?? []) {
      w.f64(x.window.start)
      w.f64(x.window.end)
      w.f64(x.closesAt)
      w.u8(x.fired ? 1 : 0)
      const a = x.agg
      w.f64(a.count)
      w.f64(a.min)
      w.f64(a.max)
      w.f64(a.sum)
      w.f64(a.first)
      w.f64(a.firstTs)
      w.f64(a.last)
      w.f64(a.lastTs)
    }
  }
}

/** Decodes one (device, metric) key's entry written before version 2: version 1, or JSON. */
export function decodeOpenWindows(value: Buffer): (OpenWindow[] | null)[] {
  if (value[0] === 0x5b) return JSON.parse(value.toString()) as (OpenWindow[] | null)[]
  const r = new StateReader(value, 'rollup state')
  const version = r.u8()
  if (version !== KEY_STATE_VERSION) r.fail(`unknown version ${version}`)
  const out = readOutputs(r)
  r.end()
  return out
}

function readOutputs(r: StateReader): (OpenWindow[] | null)[] {
  const out: (OpenWindow[] | null)[] = []
  for (let outputs = r.varint(); outputs > 0; outputs--) {
    const n = r.varint()
    if (n === 0) {
      out.push(null)
      continue
    }
    const windows: OpenWindow[] = []
    for (let i = 0; i < n; i++) {
      const window = { start: r.f64(), end: r.f64() }
      const closesAt = r.f64()
      const fired = r.u8() === 1
      const agg = {
        count: r.f64(),
        min: r.f64(),
        max: r.f64(),
        sum: r.f64(),
        first: r.f64(),
        firstTs: r.f64(),
        last: r.f64(),
        lastTs: r.f64(),
      }
      windows.push({ window, agg, closesAt, fired })
    }
    out.push(windows)
  }
  return out
}
