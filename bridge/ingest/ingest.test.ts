import { DriftTracker, describeDrift } from './drift'
import { RateLimiter } from './rate-limit'
import { SequenceTracker } from './sequence'

describe('bridge > ingest > sequence accounting', () => {
  // Table: a device's (ts, seq) inputs and the verdicts expected, in order.
  const cases: { name: string; input: [number, number | null][]; verdicts: string[]; counts: object }[] = [
    {
      name: 'in order',
      input: [
        [1, 0],
        [2, 1],
        [3, 2],
      ],
      verdicts: ['first', 'next', 'next'],
      counts: { gaps: 0, missing: 0, reorders: 0, duplicates: 0 },
    },
    {
      name: 'a gap of 3',
      input: [
        [1, 0],
        [2, 4],
      ],
      verdicts: ['first', 'gap'],
      counts: { gaps: 1, missing: 3, reorders: 0, duplicates: 0 },
    },
    {
      name: 'a reorder',
      input: [
        [1, 0],
        [3, 2],
        [2, 1],
      ],
      verdicts: ['first', 'gap', 'reorder'],
      counts: { gaps: 1, missing: 1, reorders: 1, duplicates: 0 },
    },
    {
      name: 'an exact duplicate',
      input: [
        [1, 0],
        [2, 1],
        [2, 1],
      ],
      verdicts: ['first', 'next', 'duplicate'],
      counts: { gaps: 0, missing: 0, reorders: 0, duplicates: 1 },
    },
    {
      name: 'same seq, other ts (a reset, not a duplicate)',
      input: [
        [1, 5],
        [9, 5],
      ],
      verdicts: ['first', 'reorder'],
      counts: { gaps: 0, missing: 0, reorders: 1, duplicates: 0 },
    },
    {
      name: 'no seq',
      input: [
        [1, null],
        [1, null],
      ],
      verdicts: ['none', 'none'],
      counts: { gaps: 0, missing: 0, reorders: 0, duplicates: 0 },
    },
  ]
  it.each(cases)('$name', ({ input, verdicts, counts }) => {
    const t = new SequenceTracker()
    expect(input.map(([ts, seq]) => t.observe('d', ts, seq))).toEqual(verdicts)
    expect(t.counts).toEqual(counts)
  })

  it('keeps devices apart', () => {
    const t = new SequenceTracker()
    expect([t.observe('a', 1, 0), t.observe('b', 1, 0), t.observe('a', 2, 1)]).toEqual([
      'first',
      'first',
      'next',
    ])
  })

  it('forgets duplicates older than the window', () => {
    const t = new SequenceTracker(2)
    t.observe('d', 1, 1)
    t.observe('d', 2, 2)
    t.observe('d', 3, 3)
    expect(t.observe('d', 1, 1)).toBe('reorder')
    expect(t.observe('d', 3, 3)).toBe('duplicate')
  })

  it('tells readings with the same seq and another ts apart (a restarted count), within the window', () => {
    const t = new SequenceTracker(3)
    const w = Promise.resolve()
    expect([t.observe('d', 10, 1), t.observe('d', 20, 1, w), t.observe('d', 30, 1)]).toEqual([
      'first',
      'reorder',
      'reorder',
    ])
    expect([t.observe('d', 20, 1), t.observe('d', 10, 1)]).toEqual(['duplicate', 'duplicate'])
    t.forget('d', 1, w) // (20, 1)'s slot
    expect(t.observe('d', 20, 1)).toBe('reorder') // taken again; (10, 1) leaves the window
    expect([t.observe('d', 10, 1), t.observe('d', 30, 1)]).toEqual(['reorder', 'duplicate'])
  })

  it('takes a forgotten reading again, and keeps its resend for a whole window', () => {
    const t = new SequenceTracker(3)
    const w = Promise.resolve()
    t.observe('d', 1, 1, w)
    t.observe('d', 2, 2)
    t.forget('d', 0, w) // (1, 1)'s write failed: the device resends it
    expect(t.observe('d', 1, 1)).toBe('reorder')
    t.observe('d', 3, 3)
    t.observe('d', 4, 4) // 2 leaves the window; the resend of 1 is still in it
    expect(t.observe('d', 1, 1)).toBe('duplicate')
    expect(t.observe('d', 2, 2)).toBe('reorder')
  })
})

/** The window as a list, each reading an entry: what SequenceTracker's ring must answer like. */
class ReferenceWindow {
  private readonly ring: ({ ts: number; seq: number; write: Promise<unknown> | null } | undefined)[] = []
  private next = 0
  constructor(private readonly window: number) {}
  private find(ts: number, seq: number) {
    return this.ring.find((r) => r?.ts === ts && r.seq === seq)
  }
  /** The entry (ts, seq) is at if it is in the window (-1); else the one it is remembered at. */
  seen(ts: number, seq: number, write: Promise<unknown> | null): number {
    if (this.find(ts, seq)) return -1
    const at = this.next
    this.ring[at] = { ts, seq, write }
    this.next = (this.next + 1) % this.window
    return at
  }
  firstCopy(ts: number, seq: number) {
    return this.find(ts, seq)?.write ?? null
  }
  written(at: number, write: Promise<unknown>) {
    const r = this.ring[at]
    if (r?.write === write) r.write = null
  }
  forget(at: number, write: Promise<unknown>) {
    if (this.ring[at]?.write === write) this.ring[at] = undefined
  }
}

describe('bridge > ingest > duplicate window', () => {
  it.each([
    [1, 8, 0],
    [5, 8, 0],
    [16, 8, 0],
    [40, 8, 0],
    [100, 8, 0],
    // Many distinct seqs: the index's collisions, runs and deletions; numbers past 2^32.
    [100, 300, 0],
    [5, 300, 0],
    [16, 60, 2 ** 33],
    [64, 1000, 2 ** 40],
    [300, 400, 2 ** 32 - 150],
  ])(
    'answers as a plain list of the last %i readings would (seqs: %i from %d), through growth and wrap-around',
    (window, seqs, base) => {
      // A small LCG: the same "random" readings each run.
      let x = 12345 + window + seqs
      const rand = (n: number) => ((x = (x * 1103515245 + 12345) % 2 ** 31), (x >>> 16) % n)
      const t = new SequenceTracker(window)
      // Three devices in one tracker (their writes share one table), each against its own list.
      const devices = ['d', 'e', 'f']
      const refs = devices.map(() => new ReferenceWindow(window))
      const writes = [Promise.resolve(1), Promise.resolve(2), Promise.resolve(3)]
      /** Slots readings were put in, lately, by device: written and forgotten by them, some long after. */
      const slotsOf = devices.map((): number[] => [])
      for (let i = 0; i < 3000; i++) {
        const di = rand(10) < 6 ? 0 : 1 + rand(2)
        const dev = devices[di]!
        const ref = refs[di]!
        const slots = slotsOf[di]!
        // Few distinct seqs and ts: restarted counts, resends and chains of the same seq.
        const seq = base + rand(seqs)
        const ts = 1000 + rand(8)
        const op = rand(10)
        const w = writes[rand(3)]!
        const slot = slots.length > 0 ? slots[rand(slots.length)]! : 0
        if (op < 7) {
          const verdict = t.observe(dev, ts, seq, w)
          const at = ref.seen(ts, seq, w)
          expect(verdict === 'duplicate').toBe(at === -1)
          expect(t.slot).toBe(at)
          if (at !== -1) slots.push(at)
          if (slots.length > 2 * window) slots.shift()
        } else if (op === 7) {
          t.forget(dev, slot, w)
          ref.forget(slot, w)
        } else if (op === 8) {
          t.written(dev, slot, w)
          ref.written(slot, w)
        } else expect(t.firstCopy(dev, ts, seq)).toBe(ref.firstCopy(ts, seq))
      }
    },
  )
})

describe('bridge > ingest > schema drift', () => {
  it('learns from the first reading and reports new names and type changes', () => {
    const d = new DriftTracker()
    expect(d.check('x', { t: 1 })).toBeUndefined()
    d.learn('x', { t: 1, ok: true })
    expect(d.check('x', { t: 2, ok: false })).toBeUndefined()
    const drift = d.check('x', { t: 'hot', h: 40 })
    expect(drift).toEqual({ newMetrics: ['h'], changedType: [{ metric: 't', was: 'number', now: 'string' }] })
    expect(describeDrift(drift!)).toBe('schema drift: new metrics h; t changed from number to string')
    expect(d.check('other', { t: 'hot' })).toBeUndefined()
  })

  it('bounds what it remembers per device', () => {
    const d = new DriftTracker(2)
    d.learn('x', { a: 1, b: 1, c: 1 })
    expect(d.check('x', { c: 1 })).toEqual({ newMetrics: ['c'], changedType: [] })
  })
})

describe('bridge > ingest > rate limit', () => {
  it('allows a burst, then the steady rate, per device', () => {
    const r = new RateLimiter(10, 5)
    const t0 = 1_000_000
    expect(Array.from({ length: 6 }, () => r.take('d', t0))).toEqual([true, true, true, true, true, false])
    expect(r.take('other', t0)).toBe(true)
    expect(r.retryAfterS('d')).toBe(1)
    expect(r.take('d', t0 + 100)).toBe(true) // 100 ms at 10/s refills one token
    expect(r.take('d', t0 + 100)).toBe(false)
  })

  it('is off at rate 0', () => {
    const r = new RateLimiter(0, 0)
    expect(Array.from({ length: 100 }, () => r.take('d', 0)).every(Boolean)).toBe(true)
  })
})
