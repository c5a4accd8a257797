import { advance, fire, newWindowState, snapshotKey } from '../operators/window-aggregate'
import {
  decodeDeviceWindows,
  decodeOpenWindows,
  encodeDeviceWindows,
  encodeOpenWindows,
} from './rollup-state-codec'

describe('stream-jobs > rollup > rollup state codec', () => {
  // Open windows as the operator holds them: two outputs (1 min with one window fired and kept
  // for its lateness, 1 h open), awkward values included.
  const held = () => {
    const minute = newWindowState({ spec: { kind: 'tumbling', sizeMs: 60_000 }, allowedLatenessMs: 120_000 })
    const hour = newWindowState({ spec: { kind: 'tumbling', sizeMs: 3_600_000 }, allowedLatenessMs: 0 })
    const t0 = 1_764_000_000_000
    const values = [21.37, -0.1, 1e-300, 1e300, 0, 17]
    values.forEach((value, i) => {
      for (const ws of [minute, hour]) advance(ws, { key: 'k', ts: t0 + i * 20_000, value }, t0)
    })
    fire(minute, t0 + 65_000, new Set(['k']))
    return [snapshotKey(minute, 'k')!, snapshotKey(hour, 'k')!]
  }

  it('round-trips open windows exactly, fired flags and nulls included', () => {
    const snaps = held()
    expect(snaps[0]!.some((w) => w.fired)).toBe(true)
    expect(snaps[0]!.some((w) => !w.fired)).toBe(true)
    expect(decodeOpenWindows(encodeOpenWindows(snaps))).toEqual(snaps)
    expect(decodeOpenWindows(encodeOpenWindows([null, snaps[1]!]))).toEqual([null, snaps[1]])
    expect(decodeOpenWindows(encodeOpenWindows([]))).toEqual([])
  })

  it('is smaller than the JSON it replaces', () => {
    const snaps = held()
    expect(encodeOpenWindows(snaps).length).toBeLessThan(Buffer.byteLength(JSON.stringify(snaps)))
  })

  it('still reads entries written as JSON before this format', () => {
    const snaps = held()
    expect(decodeOpenWindows(Buffer.from(JSON.stringify([snaps[0], null])))).toEqual([snaps[0], null])
  })

  it('rejects a cut-short entry, leftover bytes and an unknown version', () => {
    const good = encodeOpenWindows(held())
    expect(() => decodeOpenWindows(good.subarray(0, good.length - 3))).toThrow(
      /rollup state: entry cut short/,
    )
    expect(() => decodeOpenWindows(Buffer.concat([good, Buffer.from([0])]))).toThrow(/left over/)
    const v9 = Buffer.from(good)
    v9[0] = 9
    expect(() => decodeOpenWindows(v9)).toThrow(/rollup state: unknown version 9/)
  })

  it("round-trips a device's entry: its metrics (names in UTF-8) and their windows per output", () => {
    const snaps = held()
    const entry = [
      ['temperature', snaps],
      ['Druck (hPa) – außen', [null, snaps[1]!]],
    ] as const
    expect(decodeDeviceWindows(encodeDeviceWindows(entry))).toEqual(entry)
    expect(decodeDeviceWindows(encodeDeviceWindows([]))).toEqual([])
    const good = encodeDeviceWindows(entry)
    expect(() => decodeDeviceWindows(good.subarray(0, good.length - 1))).toThrow(/entry cut short/)
    // The two kinds of entry are told apart by their version: neither reads the other.
    expect(() => decodeDeviceWindows(encodeOpenWindows(snaps))).toThrow(/unknown version 1/)
    expect(() => decodeOpenWindows(good)).toThrow(/unknown version 2/)
  })
})
