import { ConfigError } from '../core/errors'
import { RejectError } from './errors'

/** A compiled topic template: a strict pattern with named one-level variables. */
export interface TopicTemplate {
  readonly template: string
  /** The variables in the template, `deviceId` always among them. */
  readonly variables: readonly string[]
  /** The variables of `topic`, or undefined when it does not match. */
  match(topic: string): Record<string, string> | undefined
  /** The topic for these variables (e.g. a device's downlink topic). */
  format(vars: Record<string, string>): string
}

const VARIABLE = /^\{([A-Za-z][A-Za-z0-9_]*)\}$/
/** A variable's value: one topic level, never a wildcard or a `$` system prefix. */
const VALUE = '([^/+#$][^/+#]*)'

/**
 * Compiles `devices/{deviceId}/telemetry` or `{site}/{deviceId}` into a strict matcher: each
 * `{name}` is exactly one level; literal levels must match exactly; nothing else matches.
 */
export function compileTopicTemplate(template: string): TopicTemplate {
  const levels = template.split('/')
  const variables: string[] = []
  const parts: string[] = []
  for (const level of levels) {
    const v = VARIABLE.exec(level)
    if (v) {
      if (variables.includes(v[1]!)) throw templateError(template, `variable {${v[1]}} appears twice`)
      variables.push(v[1]!)
      parts.push(VALUE)
    } else if (level === '' || /[{}+#]/.test(level)) {
      throw templateError(template, `level "${level}" must be a literal without + # { } or one {variable}`)
    } else {
      parts.push(level.replace(/[.*?^$()[\]\\|]/g, '\\$&'))
    }
  }
  if (!variables.includes('deviceId')) throw templateError(template, 'it must contain {deviceId}')
  const re = new RegExp(`^${parts.join('/')}$`)
  return {
    template,
    variables,
    match(topic) {
      const m = re.exec(topic)
      if (!m) return undefined
      const out: Record<string, string> = {}
      variables.forEach((name, i) => (out[name] = m[i + 1]!))
      return out
    },
    format(vars) {
      return levels
        .map((level) => {
          const v = VARIABLE.exec(level)
          if (!v) return level
          const value = vars[v[1]!]
          if (value === undefined || !new RegExp(`^${VALUE}$`).test(value))
            throw new Error(`no valid value for {${v[1]}}`)
          return value
        })
        .join('/')
    },
  }
}

function templateError(template: string, why: string): ConfigError {
  return new ConfigError(`topic template "${template}" is invalid: ${why}`, [
    { key: 'bridge.topics.telemetry', source: 'configuration', message: why },
  ])
}

/** Matches `topic` against templates in order; throws RejectError(FS_BRIDGE_TOPIC) when none match. */
export function matchTopic(
  templates: readonly TopicTemplate[],
  topic: string,
  maxLevels: number,
): Record<string, string> {
  let levels = 1 // counted, not split: this runs for every message
  for (let i = topic.indexOf('/'); i !== -1; i = topic.indexOf('/', i + 1)) levels++
  if (levels > maxLevels)
    throw new RejectError('FS_BRIDGE_TOPIC', `topic has ${levels} levels; at most ${maxLevels} allowed`)
  for (const t of templates) {
    const vars = t.match(topic)
    if (vars) return vars
  }
  throw new RejectError(
    'FS_BRIDGE_TOPIC',
    `topic "${topic.slice(0, 200)}" matches no template (${templates.map((t) => t.template).join(', ')})`,
  )
}
