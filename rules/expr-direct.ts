/**
 * The commonest conditions — comparisons of metrics with literals, joined by `&&`, `||` and `!`
 * (`metrics.temperature > 30.0 && metrics.door == "open"`) — evaluated straight from CEL's
 * parsed tree, with CEL's semantics, instead of through the interpreter (which builds CEL values
 * for every variable and is the costliest part of judging a reading). Anything outside this
 * subset returns null from `compileDirect` and goes to the interpreter. The two agree on every
 * input: expr-direct.test.ts checks them against each other.
 *
 * CEL semantics kept: numbers compare across int, uint and double; `==`/`!=` across different
 * kinds is false/true; ordering across kinds, and a missing metric, are errors; `&&` and `||`
 * are commutative over errors (`error && false` is false, `error || true` is true).
 */
import type { parse } from '@bufbuild/cel'

/** A node of CEL's parsed tree. */
type Expr = NonNullable<ReturnType<typeof parse>['expr']>

/** An evaluation's outcome: a boolean or an error. */
type Out = boolean | { error: string }
type Metrics = Record<string, number | boolean | string>
type Direct = (m: Metrics) => Out

type Literal = number | string | boolean
const ORDER = new Set(['_<_', '_<=_', '_>_', '_>=_'])
const EQUALITY = new Set(['_==_', '_!=_'])
const FLIPPED: Record<string, string> = { '_<_': '_>_', '_<=_': '_>=_', '_>_': '_<_', '_>=_': '_<=_' }

function literal(e: Expr): Literal | undefined {
  if (e.exprKind.case !== 'constExpr') return undefined
  const k = e.exprKind.value.constantKind
  switch (k.case) {
    case 'doubleValue':
    case 'stringValue':
    case 'boolValue':
      return k.value
    case 'int64Value':
    case 'uint64Value': {
      const n = Number(k.value)
      return Number.isSafeInteger(n) ? n : undefined
    }
    default:
      return undefined
  }
}

/** `metrics.name` (a field select on the `metrics` variable, not `has()`). */
function metricName(e: Expr): string | undefined {
  if (e.exprKind.case !== 'selectExpr') return undefined
  const s = e.exprKind.value
  if (s.testOnly || s.operand?.exprKind.case !== 'identExpr') return undefined
  return s.operand.exprKind.value.name === 'metrics' ? s.field : undefined
}

function compare(fn: string, name: string, lit: Literal): Direct | null {
  const missing = { error: `no such key: ${name}` }
  if (ORDER.has(fn)) {
    if (typeof lit !== 'number') return null // string and bool ordering: the interpreter
    const mismatch = { error: `no matching overload for '${fn}'` }
    const cmp =
      fn === '_<_'
        ? (v: number) => v < lit
        : fn === '_<=_'
          ? (v: number) => v <= lit
          : fn === '_>_'
            ? (v: number) => v > lit
            : (v: number) => v >= lit
    return (m) => {
      if (!Object.hasOwn(m, name)) return missing
      const v = m[name]
      return typeof v === 'number' ? cmp(v) : mismatch
    }
  }
  const eq = fn === '_==_'
  return (m) => {
    if (!Object.hasOwn(m, name)) return missing
    const v = m[name]
    return typeof v === typeof lit ? (v === lit) === eq : !eq
  }
}

/** The direct form of `e`, or null when it is outside the subset. */
export function compileDirect(e: Expr | undefined): Direct | null {
  if (!e || e.exprKind.case !== 'callExpr') return null
  const call = e.exprKind.value
  const fn = call.function
  if (call.target) return null
  const args = call.args
  if (fn === '!_' && args.length === 1) {
    const a = compileDirect(args[0])
    if (!a) return null
    return (m) => {
      const v = a(m)
      return typeof v === 'boolean' ? !v : v
    }
  }
  if ((fn === '_&&_' || fn === '_||_') && args.length === 2) {
    const a = compileDirect(args[0])
    const b = compileDirect(args[1])
    if (!a || !b) return null
    const decisive = fn === '_||_' // true decides `||`, false decides `&&`
    return (m) => {
      const x = a(m)
      if (x === decisive) return x
      const y = b(m)
      if (y === decisive) return y
      if (typeof x !== 'boolean') return x
      if (typeof y !== 'boolean') return y
      return !decisive
    }
  }
  if ((ORDER.has(fn) || EQUALITY.has(fn)) && args.length === 2) {
    const [l, r] = args as [Expr, Expr]
    const ln = metricName(l)
    const rl = literal(r)
    if (ln !== undefined && rl !== undefined) return compare(fn, ln, rl)
    const rn = metricName(r)
    const ll = literal(l)
    if (rn !== undefined && ll !== undefined) return compare(FLIPPED[fn] ?? fn, rn, ll)
  }
  return null
}
