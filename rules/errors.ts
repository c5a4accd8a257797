import { FleetError } from '../core/errors'

/** One problem in a rule file: where it is and what is wrong. */
export interface RuleProblem {
  file: string
  /** The rule's id, or `#<index>` when it has none. */
  rule: string
  /** Dotted path inside the rule (`for.duration`, `when`). */
  path: string
  message: string
}

/** Rule files that do not validate: every problem, each naming file, rule and path. */
export class RuleValidationError extends FleetError {
  constructor(readonly problems: RuleProblem[]) {
    super(
      `invalid rules:\n${problems.map((p) => `  ${p.file}: rule ${p.rule}: ${p.path || '(rule)'}: ${p.message}`).join('\n')}`,
      { code: 'FS_RULES_INVALID', retriable: false },
    )
  }
}
