import { aggregateOf, avg, combine } from './aggregate'
import { checkWindowSpec, windowsFor } from './windows'

describe('stream-jobs > windows > assignment', () => {
  // Table: event time, spec, the windows expected ([start, end) pairs).
  const cases: [string, number, Parameters<typeof windowsFor>[1], [number, number][]][] = [
    ['tumbling, inside', 61_000, { kind: 'tumbling', sizeMs: 60_000 }, [[60_000, 120_000]]],
    ['tumbling, on the start boundary', 60_000, { kind: 'tumbling', sizeMs: 60_000 }, [[60_000, 120_000]]],
    ['tumbling, one ms before the end', 119_999, { kind: 'tumbling', sizeMs: 60_000 }, [[60_000, 120_000]]],
    ['tumbling, at 0', 0, { kind: 'tumbling', sizeMs: 60_000 }, [[0, 60_000]]],
    ['tumbling, negative time', -1, { kind: 'tumbling', sizeMs: 60_000 }, [[-60_000, 0]]],
    ['hourly', 3_600_000 * 5 + 7, { kind: 'tumbling', sizeMs: 3_600_000 }, [[18_000_000, 21_600_000]]],
    [
      'hopping 60/20, inside',
      65_000,
      { kind: 'hopping', sizeMs: 60_000, advanceMs: 20_000 },
      [
        [20_000, 80_000],
        [40_000, 100_000],
        [60_000, 120_000],
      ],
    ],
    [
      'hopping 60/20, on a boundary',
      60_000,
      { kind: 'hopping', sizeMs: 60_000, advanceMs: 20_000 },
      [
        [20_000, 80_000],
        [40_000, 100_000],
        [60_000, 120_000],
      ],
    ],
    [
      'hopping 60/20, before a boundary',
      59_999,
      { kind: 'hopping', sizeMs: 60_000, advanceMs: 20_000 },
      [
        [0, 60_000],
        [20_000, 80_000],
        [40_000, 100_000],
      ],
    ],
    [
      'hopping equal to tumbling',
      61_000,
      { kind: 'hopping', sizeMs: 60_000, advanceMs: 60_000 },
      [[60_000, 120_000]],
    ],
    [
      'hopping 10/3 (not a divisor)',
      10,
      { kind: 'hopping', sizeMs: 10, advanceMs: 3 },
      [
        [3, 13],
        [6, 16],
        [9, 19],
      ],
    ],
  ]
  it.each(cases)('%s', (_name, ts, spec, expected) => {
    const ws = windowsFor(ts, spec)
    expect(ws.map((w) => [w.start, w.end])).toEqual(expected)
    for (const w of ws) expect(ts >= w.start && ts < w.end).toBe(true)
  })

  it.each([
    [{ kind: 'tumbling', sizeMs: 0 }, /sizeMs/],
    [{ kind: 'tumbling', sizeMs: 1.5 }, /sizeMs/],
    [{ kind: 'hopping', sizeMs: 10, advanceMs: 20 }, /must not exceed/],
    [{ kind: 'session', gapMs: -1 }, /gapMs/],
  ] as const)('refuses %j', (spec, msg) => {
    expect(() => checkWindowSpec(spec)).toThrow(msg)
  })
})

describe('stream-jobs > windows > aggregates', () => {
  it('count, min, max, sum, avg, first and last by event time', () => {
    const a = [aggregateOf(5, 30), aggregateOf(2, 10), aggregateOf(9, 20)].reduce(combine)
    expect(a).toEqual({ count: 3, min: 2, max: 9, sum: 16, first: 2, firstTs: 10, last: 5, lastTs: 30 })
    expect(avg(a)).toBeCloseTo(16 / 3)
  })

  it('is order-independent, even for ties in event time', () => {
    const xs = [aggregateOf(1, 5), aggregateOf(3, 5), aggregateOf(2, 5)]
    const forward = xs.reduce(combine)
    const backward = [...xs].reverse().reduce(combine)
    expect(backward).toEqual(forward)
    expect(forward.first).toBe(1)
    expect(forward.last).toBe(3)
  })
})
