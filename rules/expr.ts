/**
 * The rule condition language: CEL (Common Expression Language, cel.dev), evaluated by
 * `@bufbuild/cel`, an interpreter: expressions are parsed to a tree and planned, never turned
 * into JavaScript (no `eval`, no `new Function`). CEL has no loops, no assignment and no
 * side effects, so a condition always terminates. Two limits are ours, checked before
 * parsing so a hostile expression gets a clear error instead of a parser stack overflow:
 * length and nesting depth.
 */
import { celEnv, isCelError, parse, plan } from '@bufbuild/cel'
import { compileDirect } from './expr-direct'

/** Longest condition accepted, characters. */
export const MAX_EXPRESSION_LENGTH = 2_000
/** Deepest nesting of (), [] and {} accepted. */
export const MAX_EXPRESSION_DEPTH = 24

/** What a condition sees of a reading. */
export interface ConditionInput {
  deviceId: string
  tenant: string | null
  /** Event time, ms. */
  ts: number
  metrics: Record<string, number | boolean | string>
  meta: Record<string, string>
  /** The device's registry entry (site, model, tags, limits), when known. */
  device?: { site: string | null; model: string | null; tags: Record<string, string> } | undefined
}

/** A compiled condition: true, false, or an error (missing metric, wrong type) that counts as false. */
export type Condition = (input: ConditionInput) => { ok: true; value: boolean } | { ok: false; error: string }

/** Why an expression was refused at load time. */
export class ExpressionError extends Error {}

const env = celEnv()

/** Refuses over-long or over-deep expressions before the parser sees them. */
function checkShape(source: string): void {
  if (source.length > MAX_EXPRESSION_LENGTH)
    throw new ExpressionError(`expression too long (${source.length} > ${MAX_EXPRESSION_LENGTH} characters)`)
  let depth = 0
  let max = 0
  let quote: string | null = null
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!
    if (quote) {
      if (c === '\\') i++
      else if (c === quote) quote = null
      continue
    }
    if (c === '"' || c === "'") quote = c
    else if (c === '(' || c === '[' || c === '{') max = Math.max(max, ++depth)
    else if (c === ')' || c === ']' || c === '}') depth--
  }
  if (max > MAX_EXPRESSION_DEPTH)
    throw new ExpressionError(`expression nested too deeply (${max} > ${MAX_EXPRESSION_DEPTH} levels)`)
}

/** Scopes already built, per reading: every condition rule on one reading shares one. */
const scopes = new WeakMap<ConditionInput, Record<string, unknown>>()

/** A variable scope with no prototype: names such as `constructor` resolve to nothing. */
function bindings(input: ConditionInput): Record<string, unknown> {
  const cached = scopes.get(input)
  if (cached) return cached
  const b = Object.create(null) as Record<string, unknown>
  scopes.set(input, b)
  b.deviceId = input.deviceId
  b.tenant = input.tenant
  b.ts = input.ts
  b.metrics = new Map(Object.entries(input.metrics))
  b.meta = new Map(Object.entries(input.meta))
  const d = input.device
  b.device = new Map<string, unknown>([
    ['known', d !== undefined],
    ['site', d?.site ?? ''],
    ['model', d?.model ?? ''],
    ['tags', new Map(Object.entries(d?.tags ?? {}))],
  ])
  return b
}

/**
 * The metrics a condition cannot do without: when one is missing, the result is an error or
 * false — both count as false — so the condition need not run (building CEL's error values is
 * the costliest part of judging readings that lack a rule's metrics). Only for expressions with
 * no `||`, `?:`, `has()` or `in`, the constructs through which CEL lets a missing key give true.
 */
export function requiredMetrics(source: string): string[] | null {
  const code = source.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, (lit) => (lit.length > 2 ? '""' : lit))
  if (/\|\||\?|\bhas\s*\(|\bin\b/.test(code)) return null
  const names = new Set<string>()
  for (const m of code.matchAll(/\bmetrics\.([A-Za-z_][A-Za-z0-9_]*)/g)) names.add(m[1]!)
  for (const m of source.matchAll(/\bmetrics\[\s*["']([^"'\\]+)["']\s*\]/g)) names.add(m[1]!)
  return [...names]
}

/** Compiles a condition; throws ExpressionError with the parser's message when it is not valid CEL. */
export function compileCondition(source: string): Condition {
  checkShape(source)
  const required = requiredMetrics(source) ?? []
  let program: (ctx: Record<string, unknown>) => unknown
  let direct: ReturnType<typeof compileDirect>
  try {
    const parsed = parse(source)
    program = plan(env, parsed) as (ctx: Record<string, unknown>) => unknown
    direct = compileDirect(parsed.expr)
  } catch (err) {
    throw new ExpressionError((err as Error).message)
  }
  if (direct) {
    const run = direct
    return (input) => {
      const v = run(input.metrics)
      return typeof v === 'boolean' ? { ok: true, value: v } : { ok: false, error: v.error }
    }
  }
  return (input) => {
    for (const name of required)
      if (!Object.hasOwn(input.metrics, name)) return { ok: false, error: `no such key: ${name}` }
    const out = program(bindings(input))
    if (isCelError(out)) return { ok: false, error: out.message }
    if (typeof out !== 'boolean')
      return { ok: false, error: `the condition gave ${typeof out}, not a boolean` }
    return { ok: true, value: out }
  }
}
