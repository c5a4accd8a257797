import { celEnv, isCelError, parse, plan } from '@bufbuild/cel'
import { prng } from '../simulator/signals'
import { compileDirect } from './expr-direct'

/** The interpreter's answer: a boolean, or 'error'. */
function interpreted(source: string, metrics: Record<string, unknown>): boolean | 'error' {
  const out = (plan(celEnv(), parse(source)) as (ctx: Record<string, unknown>) => unknown)({
    metrics: new Map(Object.entries(metrics)),
  })
  if (isCelError(out)) return 'error'
  if (typeof out !== 'boolean') throw new Error(`${source} gave ${typeof out}`)
  return out
}

function direct(
  source: string,
  metrics: Record<string, number | boolean | string>,
): boolean | 'error' | null {
  const run = compileDirect(parse(source).expr)
  if (!run) return null
  const v = run(metrics)
  return typeof v === 'boolean' ? v : 'error'
}

describe('rules > direct evaluation of simple conditions', () => {
  it('covers comparisons of metrics with literals joined by && || !, and nothing else', () => {
    for (const s of [
      'metrics.a > 1.0',
      '2 <= metrics.a',
      'metrics.s == "x" && !(metrics.b == true) || metrics.a != 3u',
    ])
      expect(direct(s, { a: 1 })).not.toBeNull()
    for (const s of [
      'metrics.a + 1.0 > 2.0', // arithmetic
      'metrics.s < "m"', // string ordering (code points, not UTF-16 units)
      'has(metrics.a)',
      'metrics["a"] > 1.0',
      'device.site == "north"',
      'metrics.a > metrics.b',
      'metrics.a > 1.0 ? true : false',
      'metrics.a in [1, 2]',
      'size(metrics) > 1',
    ])
      expect(direct(s, { a: 1 })).toBeNull()
  })

  it('agrees with the CEL interpreter on random conditions and readings', () => {
    const rand = prng(42)
    const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)]!
    const names = ['a', 'b', 's', 'n']
    const numbers = ['1', '1.0', '2.5', '-3', '0u', '7u', '0.0']
    const others = ['"x"', '"open"', '""', 'true', 'false']
    const leaf = () => {
      const m = `metrics.${pick(names)}`
      const op = pick(['<', '<=', '>', '>=', '==', '!='])
      // Ordering with a string or bool literal is outside the direct subset.
      const l = op.includes('=') && op !== '<=' && op !== '>=' ? pick([...numbers, ...others]) : pick(numbers)
      return rand() < 0.5 ? `${m} ${op} ${l}` : `${l} ${op} ${m}`
    }
    const expr = (depth: number): string => {
      if (depth === 0 || rand() < 0.3) return leaf()
      const r = rand()
      if (r < 0.2) return `!(${expr(depth - 1)})`
      return `(${expr(depth - 1)}) ${r < 0.6 ? '&&' : '||'} (${expr(depth - 1)})`
    }
    const values: (number | boolean | string | undefined)[] = [
      0,
      1,
      2.5,
      -3,
      7,
      NaN,
      Infinity,
      'x',
      'open',
      '',
      true,
      false,
      undefined,
    ]
    let compared = 0
    const mismatches: string[] = []
    for (let i = 0; i < 400; i++) {
      const source = expr(3)
      for (let j = 0; j < 12; j++) {
        const metrics: Record<string, number | boolean | string> = {}
        for (const n of names) {
          const v = pick(values)
          if (v !== undefined) metrics[n] = v
        }
        const d = direct(source, metrics)
        if (d === null) throw new Error(`not direct: ${source}`)
        const want = interpreted(source, metrics)
        compared++
        if (d !== want) mismatches.push(`${source} on ${JSON.stringify(metrics)}: ${d} ≠ ${want}`)
      }
    }
    expect(mismatches.slice(0, 10)).toEqual([])
    expect(compared).toBe(4800)
  })
})
