import { readFileSync, readdirSync, statSync } from 'node:fs'
import path from 'node:path'
import YAML from 'yaml'
import { compileRule, type CompiledRule } from './engine'
import { RuleValidationError, type RuleProblem } from './errors'
import { compileCondition, ExpressionError } from './expr'
import { ruleSchema, type Rule } from './schema'

/** Largest rule file read, bytes. */
const MAX_FILE_BYTES = 1024 * 1024

/**
 * Validates and compiles rules given as plain data (from YAML, or from the `iot.rules`
 * topic). `source` names where they came from in errors. Throws RuleValidationError listing
 * every problem; ids must be unique.
 */
export function parseRules(
  source: string,
  items: unknown[],
  seen = new Map<string, string>(),
): CompiledRule[] {
  const problems: RuleProblem[] = []
  const out: CompiledRule[] = []
  items.forEach((item, i) => {
    const id =
      item && typeof item === 'object' && typeof (item as { id?: unknown }).id === 'string'
        ? (item as { id: string }).id
        : `#${i + 1}`
    const parsed = ruleSchema.safeParse(item)
    if (!parsed.success) {
      for (const issue of parsed.error.issues)
        problems.push({ file: source, rule: id, path: issue.path.join('.'), message: issue.message })
      return
    }
    const rule: Rule = parsed.data
    const other = seen.get(rule.id)
    if (other !== undefined) {
      problems.push({ file: source, rule: id, path: 'id', message: `duplicate id (also in ${other})` })
      return
    }
    seen.set(rule.id, source)
    // Each expression on its own, so the error names its path.
    const expressions = rule.kind === 'condition' ? { when: rule.when, clearWhen: rule.clearWhen } : {}
    let bad = false
    for (const [where, src] of Object.entries(expressions)) {
      if (src === undefined) continue
      try {
        compileCondition(src)
      } catch (err) {
        if (!(err instanceof ExpressionError)) throw err
        problems.push({ file: source, rule: id, path: where, message: err.message })
        bad = true
      }
    }
    if (!bad) out.push(compileRule(rule))
  })
  if (problems.length) throw new RuleValidationError(problems)
  return out
}

/** Reads every `*.yaml` / `*.yml` rule file in `dir` (or one file), each `{ rules: [...] }`. */
export function loadRuleFiles(target: string): CompiledRule[] {
  const files = statSync(target).isDirectory()
    ? readdirSync(target)
        .filter((f) => /\.ya?ml$/.test(f))
        .sort()
        .map((f) => path.join(target, f))
    : [target]
  const problems: RuleProblem[] = []
  const rules: CompiledRule[] = []
  const seen = new Map<string, string>()
  for (const file of files) {
    const name = path.relative(process.cwd(), file) || file
    if (statSync(file).size > MAX_FILE_BYTES) {
      problems.push({ file: name, rule: '-', path: '', message: `file larger than ${MAX_FILE_BYTES} bytes` })
      continue
    }
    let doc: unknown
    try {
      doc = YAML.parse(readFileSync(file, 'utf8'), { maxAliasCount: 100 })
    } catch (err) {
      problems.push({ file: name, rule: '-', path: '', message: `not valid YAML: ${(err as Error).message}` })
      continue
    }
    const list = (doc as { rules?: unknown } | null)?.rules
    if (!Array.isArray(list)) {
      problems.push({ file: name, rule: '-', path: 'rules', message: 'expected a top-level `rules:` list' })
      continue
    }
    try {
      rules.push(...parseRules(name, list, seen))
    } catch (err) {
      if (!(err instanceof RuleValidationError)) throw err
      problems.push(...err.problems)
    }
  }
  if (problems.length) throw new RuleValidationError(problems)
  return rules
}
