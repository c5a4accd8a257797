import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { RULE_SCHEMA_FILE, ruleJsonSchema } from '../scripts/gen-rule-schema'
import { RuleValidationError } from './errors'
import { loadRuleFiles, parseRules } from './loader'
import { tempDir } from '../test/tmp'

describe('rules > loader', () => {
  it('loads the shipped example rules', () => {
    const rules = loadRuleFiles(path.join(__dirname, 'examples'))
    expect(rules.map((r) => r.rule.kind).sort()).toEqual(
      ['absence', 'anomaly', 'battery', 'condition', 'range', 'rate', 'threshold'].sort(),
    )
  })

  it('names file, rule and path of every problem, across files', () => {
    const dir = tempDir('rules-')
    writeFileSync(
      path.join(dir, 'a.yaml'),
      `rules:
  - id: hot
    kind: threshold
    metric: t
    above: 30
    for: { duration: 2 minutes }
  - id: door
    kind: condition
    when: 'metrics.door == "open" &&'
  - kind: battery
    below: 200
  - { id: ok, kind: absence, after: 5m }
`,
    )
    writeFileSync(
      path.join(dir, 'b.yml'),
      `rules:\n  - { id: ok, kind: absence, after: 5m }\n  - { id: x, kind: nope }\n`,
    )
    writeFileSync(path.join(dir, 'c.yaml'), `not: [valid`)
    let err: RuleValidationError | undefined
    try {
      loadRuleFiles(dir)
    } catch (e) {
      err = e as RuleValidationError
    }
    expect(err).toBeInstanceOf(RuleValidationError)
    const where = err!.problems.map((p) => `${path.basename(p.file)} ${p.rule} ${p.path}`)
    expect(where).toEqual([
      'a.yaml hot for.duration',
      'a.yaml door when',
      'a.yaml #3 id',
      'a.yaml #3 below',
      'b.yml ok id',
      'b.yml x kind',
      'c.yaml - ',
    ])
    expect(err!.message).toMatch(
      /a\.yaml: rule hot: for\.duration: a duration: milliseconds, or such as 500ms/,
    )
    expect(err!.problems.find((p) => p.path === 'id' && p.rule === 'ok')!.message).toMatch(
      /duplicate id \(also in .*a\.yaml\)/,
    )
    expect(err!.code).toBe('FS_RULES_INVALID')
  })

  it('checks the shape of each kind (one of above/below, a safe clear level)', () => {
    const bad = (rule: object) => () => parseRules('inline', [{ id: 'r', ...rule }])
    expect(bad({ kind: 'threshold', metric: 't' })).toThrow(/give exactly one of above or below/)
    expect(bad({ kind: 'threshold', metric: 't', above: 30, clear: 35 })).toThrow(
      /clear must be on the safe side/,
    )
    expect(bad({ kind: 'range', metric: 't' })).toThrow(/give min, max or both/)
    expect(bad({ kind: 'threshold', metric: 't', above: 1, extra: true })).toThrow(/extra/)
  })
})

describe('rules > rule.schema.json', () => {
  it('is up to date with rules/schema.ts (npx tsx scripts/gen-rule-schema.ts)', () => {
    expect(readFileSync(RULE_SCHEMA_FILE, 'utf8')).toBe(ruleJsonSchema())
  })
})
