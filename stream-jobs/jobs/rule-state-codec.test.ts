import type { RuleDeviceState, SignalMemory } from '../../rules/engine'
import { decodeDeviceRules, encodeDeviceRules } from './rule-state-codec'

const encode = (
  tenant: string | null,
  rules: Record<string, RuleDeviceState>,
  memory: Record<string, SignalMemory>,
) => encodeDeviceRules(tenant, new Map(Object.entries(rules)), new Map(Object.entries(memory)))

describe('stream-jobs > rules > rule state codec', () => {
  it('round-trips every field, exactly, with only the fields in use', () => {
    const rules: Record<string, RuleDeviceState> = {
      'hot-°C': { pending: { count: 2, since: 1_764_000_000_123 }, open: null },
      open: {
        pending: null,
        open: {
          alertId: 'a'.repeat(32),
          raisedAt: 1_764_000_000_000,
          worst: -0.1,
          reported: null,
          lastEventTs: 1_764_000_060_000,
        },
      },
      'open-both': {
        pending: null,
        open: { alertId: 'b', raisedAt: 1, worst: null, reported: 3.5, lastEventTs: 2 },
      },
      absence: { pending: null, open: null, lastSeen: 1_764_000_000_999 },
      legacy: {
        pending: null,
        open: null,
        last: { ts: 5, value: 1e-300 },
        ewma: { mean: 0.1, variance: 0.2, n: 7 },
      },
    }
    const memory: Record<string, SignalMemory> = {
      'rate\u0000m0': { last: { ts: 1_764_000_000_000, value: 21.37 } },
      'zscore\u0000m1\u000020': { samples: [50, 51, 49.5, -3, 0] },
      'zscore\u0000m2\u000020': { samples: [21.37, 0.1, 1e10 + 0.5] },
      'ewma\u0000m3\u000010': { ewma: { mean: 20.5, variance: 1 / 3, n: 12 } },
    }
    const back = decodeDeviceRules(encode('tenant-ü', rules, memory))
    expect(back.tenant).toBe('tenant-ü')
    expect(back.memory).toEqual(memory)
    expect(back.rules).toEqual({
      'hot-°C': { pending: { count: 2, since: 1_764_000_000_123 } },
      open: { open: rules.open!.open },
      'open-both': { open: rules['open-both']!.open },
      absence: { lastSeen: 1_764_000_000_999 },
      legacy: { last: { ts: 5, value: 1e-300 }, ewma: { mean: 0.1, variance: 0.2, n: 7 } },
    })
    expect(decodeDeviceRules(encode(null, {}, {}))).toEqual({ tenant: null, rules: {}, memory: {} })
  })

  it('stores a window of values exact as 32-bit floats in 4 bytes a value, others in 8', () => {
    const window = (xs: number[]) => encode(null, {}, { k: { samples: xs } }).length
    const whole = Array.from({ length: 20 }, (_, i) => 40 + i)
    const decimal = whole.map((x) => x + 0.37)
    expect(window(decimal) - window(whole)).toBe(20 * 4)
    expect(decodeDeviceRules(encode(null, {}, { k: { samples: decimal } })).memory.k!.samples).toEqual(
      decimal,
    )
  })

  it('reads the JSON entries written before the binary format', () => {
    const json = {
      tenant: 't',
      rules: { r1: { pending: { count: 1, since: 5 } } },
      memory: { k: { samples: [1, 2] } },
    }
    expect(decodeDeviceRules(Buffer.from(JSON.stringify(json)))).toEqual(json)
    const older = { tenant: null, rules: { r2: { last: { ts: 1, value: 2 } } } }
    expect(decodeDeviceRules(Buffer.from(JSON.stringify(older)))).toEqual({ ...older, memory: {} })
  })

  it('refuses a cut-short entry, trailing bytes and an unknown version', () => {
    const good = encode(
      't',
      { r: { pending: { count: 1, since: 2 }, open: null } },
      { k: { samples: [1.5] } },
    )
    expect(() => decodeDeviceRules(good.subarray(0, good.length - 3))).toThrow(/cut short/)
    expect(() => decodeDeviceRules(Buffer.concat([good, Buffer.from([0])]))).toThrow(/left over/)
    const v9 = Buffer.from(good)
    v9[0] = 9
    expect(() => decodeDeviceRules(v9)).toThrow(/rule state: unknown version 9/)
  })
})
