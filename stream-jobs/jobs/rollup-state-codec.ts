import type { OpenWindow } from '../operators/window-aggregate'
import { StateReader, StateWriter } from '../runtime/state-bytes'

/**
 * The changelog value of one (device, metric) key of the rollup job: its open windows, one
 * list per rollup output (null: none open there). Rewritten for every reading of the key, so
 * it is binary rather than JSON (JSON.stringify of these lists was ~8% of `fleetstream up`'s
 * CPU); numbers are IEEE doubles, so a restored window aggregates exactly as the written one.
 *
 * Layout: u8 version (1); varint output count; per output a varint window count (0: null),
 * then per window f64s start, end, closesAt, a u8 fired flag, and the aggregate's f64s count,
 * min, max, sum, first, firstTs, last, lastTs (all little-endian).
 *
 * Entries written before this format are JSON (they start with `[`) and still decode.
 */
export const ROLLUP_STATE_VERSION = 1

const writer = new StateWriter()

/** Encodes a key's open windows per output. */
export function encodeOpenWindows(perOutput: readonly (readonly OpenWindow[] | null)[]): Buffer {
  const w = writer.reset()
  w.u8(ROLLUP_STATE_VERSION)
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
  return w.take()
}

/** Decodes a stored entry: this binary format, or the JSON written before it. */
export function decodeOpenWindows(value: Buffer): (OpenWindow[] | null)[] {
  if (value[0] === 0x5b) return JSON.parse(value.toString()) as (OpenWindow[] | null)[]
  const r = new StateReader(value, 'rollup state')
  const version = r.u8()
  if (version !== ROLLUP_STATE_VERSION) r.fail(`unknown version ${version}`)
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
  r.end()
  return out
}
