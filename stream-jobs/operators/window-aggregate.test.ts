import fc from 'fast-check'
import { WindowTestDriver } from '../testing/window-driver'
import { aggregateOf, combine, type Aggregate } from './aggregate'
import {
  advance,
  fire,
  hasDue,
  newWindowState,
  restoreKey,
  snapshotKey,
  type WindowResult,
} from './window-aggregate'
import { windowsFor } from './windows'

const MIN = 60_000
const time = { outOfOrdernessMs: 5_000, idleTimeoutMs: 30_000, maxFutureMs: 60_000 }
const r = (key: string, ts: number, value: number) => ({ key, ts, value })
const brief = (x: WindowResult) =>
  `${x.kind} ${x.key} [${x.window.start / 1000},${x.window.end / 1000}) n=${x.agg.count} sum=${x.agg.sum}`

describe('stream-jobs > windows > tumbling 1 min', () => {
  const spec = { kind: 'tumbling', sizeMs: MIN } as const

  it('fires a window once the watermark passes its end, out-of-order readings included', () => {
    const d = new WindowTestDriver({ spec, allowedLatenessMs: MIN }, time)
    d.pipe(r('a', 10_000, 1))
      .pipe(r('a', 58_000, 2))
      .pipe(r('a', 61_000, 3)) // watermark 56 s: nothing fires
    expect(d.results).toEqual([])
    d.pipe(r('a', 50_000, 4)) // out of order but within the 5 s bound
    d.pipe(r('a', 65_000, 5)) // watermark 60 s: [0, 60) fires with 3 readings
    expect(d.results.map(brief)).toEqual(['final a [0,60) n=3 sum=7'])
  })

  // Table: a reading behind the watermark, the allowed lateness, and what happens.
  const lateCases: { name: string; lateness: number; lateTs: number; expected: string[]; late: number }[] = [
    {
      name: 'inside allowed lateness: the window is corrected and re-emitted',
      lateness: MIN,
      lateTs: 30_000,
      expected: ['final a [0,60) n=1 sum=1', 'update a [0,60) n=2 sum=11'],
      late: 0,
    },
    {
      name: 'no lateness allowed: to the late topic',
      lateness: 0,
      lateTs: 30_000,
      expected: ['final a [0,60) n=1 sum=1'],
      late: 1,
    },
    {
      name: 'beyond allowed lateness: to the late topic',
      lateness: 10_000,
      lateTs: 30_000,
      expected: ['final a [0,60) n=1 sum=1'],
      late: 1,
    },
  ]
  it.each(lateCases)('$name', ({ lateness, lateTs, expected, late }) => {
    const d = new WindowTestDriver({ spec, allowedLatenessMs: lateness }, time)
    d.pipe(r('a', 1_000, 1)).pipe(r('a', 75_000, 5)) // watermark 70 s: [0,60) fired
    d.pipe(r('a', lateTs, 10))
    expect(d.results.map(brief)).toEqual(expected)
    expect(d.late).toHaveLength(late)
  })

  it('keeps keys apart and orders results by window end, then key', () => {
    const d = new WindowTestDriver({ spec, allowedLatenessMs: 0 }, time)
    d.pipe(r('b', 1_000, 1))
      .pipe(r('a', 2_000, 2))
      .pipe(r('a', 61_000, 3))
      .pipe(r('b', 130_000, 4))
    expect(d.results.map(brief)).toEqual([
      'final a [0,60) n=1 sum=2',
      'final b [0,60) n=1 sum=1',
      'final a [60,120) n=1 sum=3',
    ])
  })

  it('an idle stream still closes its windows after the idle timeout', () => {
    const d = new WindowTestDriver({ spec, allowedLatenessMs: 0 }, time)
    d.pipe(r('a', 10_000, 1), 10_000)
    d.tick(35_000)
    expect(d.results).toEqual([])
    d.tick(95_000) // idle since 10 s: watermark 10 + 85 - 5 = 90 s
    expect(d.results.map(brief)).toEqual(['final a [0,60) n=1 sum=1'])
  })

  it('forgets windows once past their allowed lateness', () => {
    const d = new WindowTestDriver({ spec, allowedLatenessMs: MIN }, time)
    d.pipe(r('a', 1_000, 1)).pipe(r('a', 80_000, 1))
    expect(d.windowState.keys.get('a')!.map((w) => w.window.start)).toEqual([0, 60_000])
    d.pipe(r('a', 130_000, 1)) // watermark 125 s > 60 + 60
    expect(d.windowState.keys.get('a')!.map((w) => w.window.start)).toEqual([60_000, 120_000])
  })
})

describe('stream-jobs > windows > hopping', () => {
  it('adds a reading to every window it falls in', () => {
    const d = new WindowTestDriver(
      { spec: { kind: 'hopping', sizeMs: 60_000, advanceMs: 30_000 }, allowedLatenessMs: 0 },
      time,
    )
    d.pipe(r('a', 40_000, 1)).pipe(r('a', 100_000, 2))
    expect(d.results.map(brief)).toEqual(['final a [0,60) n=1 sum=1', 'final a [30,90) n=1 sum=1'])
  })
})

describe('stream-jobs > windows > session', () => {
  const spec = { kind: 'session', gapMs: 10_000 } as const

  it('groups readings closer than the gap, and closes a session once the gap has passed', () => {
    const d = new WindowTestDriver({ spec, allowedLatenessMs: 0 }, time)
    d.pipe(r('a', 1_000, 1))
      .pipe(r('a', 8_000, 2))
      .pipe(r('a', 15_000, 3)) // one session 1–15 s
    d.pipe(r('a', 40_000, 4)) // watermark 35 s > 15 + 10: closes
    expect(d.results.map(brief)).toEqual(['final a [1,15.001) n=3 sum=6'])
  })

  it('merges two sessions that a late reading bridges, and corrects the emitted one', () => {
    const d = new WindowTestDriver({ spec, allowedLatenessMs: 60_000 }, time)
    // Sessions at 1 s and at 20 s; the reading at 34 s (watermark 29 s) closes the first only.
    d.pipe(r('a', 1_000, 1))
      .pipe(r('a', 20_000, 2))
      .pipe(r('a', 34_000, 3))
    expect(d.results.map(brief)).toEqual(['final a [1,1.001) n=1 sum=1'])
    d.pipe(r('a', 10_000, 10)) // late, within the gap of both: one session 1–20 s
    expect(d.results.slice(1).map(brief)).toEqual(['update a [1,20.001) n=3 sum=13'])
    d.pipe(r('a', 12_000, 100)) // joins the merged session, which had fired: corrected again
    expect(d.results.slice(2).map(brief)).toEqual(['update a [1,20.001) n=4 sum=113'])
  })

  it('retracts a fired session whose start moves when it merges with an earlier one', () => {
    const d = new WindowTestDriver({ spec, allowedLatenessMs: 60_000 }, time)
    d.pipe(r('a', 20_000, 1)).pipe(r('a', 40_000, 2)) // watermark 35 s: [20] fired
    d.pipe(r('a', 11_000, 3)) // a new session at 11 s touches the one at 20 s: merged start moves to 11 s
    expect(d.results.map(brief)).toEqual([
      'final a [20,20.001) n=1 sum=1',
      'retract a [20,20.001) n=1 sum=1',
      'update a [11,20.001) n=2 sum=4',
    ])
  })
})

describe('stream-jobs > windows > property: order within the bound does not matter', () => {
  // Integer values keep sums exact (floating-point addition is not associative).
  const reading = fc.record({
    key: fc.constantFrom('d1/t', 'd2/t', 'd3/h'),
    ts: fc.integer({ min: 0, max: 600_000 }),
    value: fc.integer({ min: -1000, max: 1000 }),
  })

  /** The expected 1-minute results, computed directly by grouping (no watermark, no operator). */
  function reference(rs: { key: string; ts: number; value: number }[]): Map<string, Aggregate> {
    const m = new Map<string, Aggregate>()
    for (const x of rs) {
      const w = windowsFor(x.ts, { kind: 'tumbling', sizeMs: MIN })[0]!
      const k = `${x.key}@${w.start}`
      const a = aggregateOf(x.value, x.ts)
      m.set(k, m.has(k) ? combine(m.get(k)!, a) : a)
    }
    return m
  }

  it('any arrival order within the out-of-orderness bound gives exactly the directly computed windows', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(reading, fc.integer({ min: 0, max: time.outOfOrdernessMs })), {
          minLength: 1,
          maxLength: 200,
        }),
        (items) => {
          // Arrival order: by event time plus a jitter of at most the bound. No reading then arrives
          // after one more than the bound ahead of it, so none is late.
          const arrival = [...items].sort((a, b) => a[0].ts + a[1] - (b[0].ts + b[1])).map(([x]) => x)
          const d = new WindowTestDriver(
            { spec: { kind: 'tumbling', sizeMs: MIN }, allowedLatenessMs: 0 },
            time,
          )
          for (const x of arrival) d.pipe(x)
          d.tick(10_000_000_000) // idle long enough: everything closes
          expect(d.late).toEqual([])
          expect(d.results.every((x) => x.kind === 'final')).toBe(true)
          const got = new Map(d.results.map((x) => [`${x.key}@${x.window.start}`, x.agg]))
          expect(got).toEqual(reference(items.map(([x]) => x)))
        },
      ),
      { numRuns: 300 },
    )
  })

  it('emits snapshots: a final result keeps its values when a late reading updates the window', () => {
    const ws = newWindowState({ spec: { kind: 'tumbling', sizeMs: 10 }, allowedLatenessMs: 100 })
    advance(ws, { key: 'k', ts: 1, value: 5 }, 0)
    const [final] = fire(ws, 10)
    const { results } = advance(ws, { key: 'k', ts: 2, value: 7 }, 10)
    expect(final!.agg).toMatchObject({ count: 1, sum: 5 })
    expect(results[0]).toMatchObject({ kind: 'update', agg: { count: 2, sum: 12 } })
  })
})

describe('stream-jobs > windows > fire skips its scan until a window is due', () => {
  // The state keeps a lower bound of every window's next event (nextDue) so that fire does not
  // scan every key on every batch. A reference state whose bound is cleared before each fire
  // always scans: both must give the same results, changed keys and held windows, for each
  // kind of window, with lateness, and with keys restored from snapshots on the way.
  const specs = [
    { kind: 'tumbling', sizeMs: 10 },
    { kind: 'hopping', sizeMs: 20, advanceMs: 5 },
    { kind: 'session', gapMs: 7 },
  ] as const
  type Op =
    | { t: 'add'; key: number; dt: number; value: number }
    | { t: 'wm'; by: number }
    | { t: 'restore'; key: number }
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({
      t: fc.constant('add' as const),
      key: fc.nat(4),
      dt: fc.integer({ min: -15, max: 15 }),
      value: fc.integer({ min: -50, max: 50 }),
    }),
    fc.record({ t: fc.constant('wm' as const), by: fc.nat(25) }),
    fc.record({ t: fc.constant('restore' as const), key: fc.nat(4) }),
  )

  it.each(specs)('gives what a full scan gives (%o)', (spec) => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), fc.nat(30), (ops, lateness) => {
        const options = { spec, allowedLatenessMs: lateness }
        let fast = newWindowState(options)
        const full = newWindowState(options)
        let wm = 0
        let now = 0
        for (const o of ops) {
          if (o.t === 'add') {
            now += Math.max(0, o.dt)
            const reading = { key: `k${o.key}`, ts: Math.max(0, now + Math.min(0, o.dt)), value: o.value }
            expect(advance(fast, reading, wm)).toEqual(advance(full, reading, wm))
          } else if (o.t === 'wm') {
            wm += o.by
            const [fc1, fc2] = [new Set<string>(), new Set<string>()]
            full.nextDue = Number.NEGATIVE_INFINITY
            expect(fire(fast, wm, fc1)).toEqual(fire(full, wm, fc2))
            expect([...fc1].sort()).toEqual([...fc2].sort())
          } else {
            // A restart: every key of the fast state restored into a new one (as from the changelog).
            const restored = newWindowState(options)
            for (const key of fast.keys.keys())
              restoreKey(
                restored,
                key,
                snapshotKey(fast, key)?.map((w) => ({ ...w, agg: { ...w.agg } })),
              )
            fast = restored
          }
          // Keys with windows (a too-late reading leaves its key an empty list, which a restore drops).
          const held = (s: typeof full) => [...s.keys.entries()].filter(([, w]) => w.length).sort()
          expect(held(fast)).toEqual(held(full))
        }
      }),
      { numRuns: 300 },
    )
  })
})

describe('stream-jobs > windows > tumbling fast path', () => {
  // Tumbling windows take their own path through `advance` (no windowsFor array, shared results
  // for the common case). Hopping windows whose advance equals their size are the same windows
  // through the general path: both must give the same results, lateness and held windows.
  it('gives what the general path gives for the same windows', () => {
    const reading = fc.record({
      key: fc.constantFrom('a', 'b', 'c'),
      dt: fc.integer({ min: -40, max: 20 }),
      value: fc.integer({ min: -50, max: 50 }),
      wmStep: fc.integer({ min: 0, max: 15 }),
    })
    fc.assert(
      fc.property(fc.array(reading, { maxLength: 60 }), fc.nat(30), (rs, lateness) => {
        const tumbling = newWindowState({
          spec: { kind: 'tumbling', sizeMs: 10 },
          allowedLatenessMs: lateness,
        })
        const general = newWindowState({
          spec: { kind: 'hopping', sizeMs: 10, advanceMs: 10 },
          allowedLatenessMs: lateness,
        })
        let wm = -30
        for (const { dt, ...rest } of rs) {
          // Around the watermark: on time, late within the allowed lateness, and too late.
          const x = { ...rest, ts: wm + dt }
          const one = advance(tumbling, x, wm)
          const other = advance(general, x, wm)
          expect(one.late).toBe(other.late)
          expect(one.results).toEqual(other.results)
          wm += x.wmStep
          expect(fire(tumbling, wm)).toEqual(fire(general, wm))
          expect([...tumbling.keys]).toEqual([...general.keys])
        }
      }),
      { numRuns: 300 },
    )
  })
})

describe('stream-jobs > windows > fire with a limit', () => {
  it('fires at most `limit` a call and the rest in later calls, each once, as one call would', () => {
    const make = () => {
      const ws = newWindowState({ spec: { kind: 'tumbling', sizeMs: 60_000 }, allowedLatenessMs: 10_000 })
      for (let k = 0; k < 7; k++) advance(ws, { key: `k${k}`, ts: 1_000 * k, value: k }, 0)
      return ws
    }
    const all = fire(make(), 65_000)
    const ws = make()
    const parts: WindowResult[][] = []
    while (hasDue(ws, 65_000)) {
      const changed = new Set<string>()
      parts.push(fire(ws, 65_000, changed, 3))
      expect([...changed].sort()).toEqual(parts[parts.length - 1]!.map((r) => r.key).sort())
      if (parts.length > 10) break
    }
    expect(parts.map((p) => p.length)).toEqual([3, 3, 1])
    expect(parts.flat()).toEqual(all)
    // Kept for their lateness, then forgotten; nothing fires twice.
    expect(fire(ws, 65_000, undefined, 3)).toEqual([])
    expect(hasDue(ws, 69_999)).toBe(false)
    expect(fire(ws, 70_000, undefined, 3)).toEqual([])
    expect(ws.keys.size).toBe(0)
  })
})
