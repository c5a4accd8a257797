import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import type { z } from 'zod'
import { ConfigError, type ConfigIssue } from '../errors'

/** Prefix of environment variables that override configuration keys. */
export const ENV_PREFIX = 'FLEETSTREAM_'

/** Environment variables with a fixed meaning outside the FLEETSTREAM_ scheme. */
const SPECIAL_ENV: Record<string, string[]> = { DEBUG_DATA_FLOW: ['debugDataFlow'] }

/** Where configuration comes from: a YAML file (optional) and an environment. */
export interface ConfigSources {
  file?: string
  /** Text of a YAML document, used instead of reading `file` (tests, stdin). */
  yamlText?: string
  env?: NodeJS.ProcessEnv
}

/** `KAFKA__CLIENT_ID` → `['kafka', 'clientId']`: `__` separates levels, `_` separates words. */
export function envNameToPath(name: string): string[] {
  return name
    .split('__')
    .map((seg) => seg.toLowerCase().replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase()))
}

/** Parses an environment value as a YAML scalar or flow collection (`5`, `true`, `[a, b]`). */
function parseEnvValue(raw: string): unknown {
  try {
    return parseYaml(raw)
  } catch {
    return raw
  }
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target
  for (const key of path.slice(0, -1)) {
    const next = node[key]
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {}
    node = node[key] as Record<string, unknown>
  }
  node[path[path.length - 1] as string] = value
}

/** Applies `FLEETSTREAM_*` variables onto `doc`; returns which dotted key came from which variable. */
export function applyEnvOverrides(doc: Record<string, unknown>, env: NodeJS.ProcessEnv): Map<string, string> {
  const origin = new Map<string, string>()
  for (const [name, raw] of Object.entries(env)) {
    if (raw === undefined) continue
    let path: string[] | undefined
    if (name.startsWith(ENV_PREFIX) && name.length > ENV_PREFIX.length) {
      path = envNameToPath(name.slice(ENV_PREFIX.length))
    } else if (SPECIAL_ENV[name]) {
      path = SPECIAL_ENV[name]
    }
    if (!path || path.some((p) => p === '')) continue
    setPath(doc, path, parseEnvValue(raw))
    origin.set(path.join('.'), name)
  }
  return origin
}

function sourceOf(key: string, origin: Map<string, string>, fileLabel: string): string {
  for (const [k, envName] of origin) {
    if (key === k || key.startsWith(`${k}.`)) return `environment variable ${envName}`
  }
  return fileLabel
}

/** Turns zod issues into one ConfigIssue per bad key, each naming the key and the expected shape. */
function toIssues(error: z.ZodError, origin: Map<string, string>, fileLabel: string): ConfigIssue[] {
  const out: ConfigIssue[] = []
  for (const issue of error.issues) {
    const base = issue.path.map(String)
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys) {
        const key = [...base, k].join('.')
        out.push({ key, source: sourceOf(key, origin, fileLabel), message: 'unknown key' })
      }
      continue
    }
    const key = base.join('.') || '(root)'
    out.push({ key, source: sourceOf(key, origin, fileLabel), message: issue.message })
  }
  return out
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v)
  }
  return value
}

/**
 * Loads configuration: the YAML document, then environment overrides, validated by `schema`
 * once. Unknown keys are rejected; the result is deeply frozen. Throws ConfigError naming
 * every bad key and where it came from.
 */
export function loadConfig<S extends z.ZodType>(
  schema: S,
  sources: ConfigSources = {},
): Readonly<z.infer<S>> {
  const fileLabel = sources.file ? `file ${sources.file}` : 'defaults'
  let doc: unknown = {}
  const text = sources.yamlText ?? (sources.file ? readConfigFile(sources.file) : undefined)
  if (text !== undefined) {
    try {
      doc = parseYaml(text) ?? {}
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err)
      throw new ConfigError(`Invalid configuration: ${fileLabel} is not valid YAML: ${msg}`, [
        { key: '(root)', source: fileLabel, message: `not valid YAML: ${msg}` },
      ])
    }
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new ConfigError(`Invalid configuration: ${fileLabel} must be a YAML mapping`, [
      { key: '(root)', source: fileLabel, message: 'expected a mapping of keys to values' },
    ])
  }
  const origin = applyEnvOverrides(doc as Record<string, unknown>, sources.env ?? {})
  const result = schema.safeParse(doc)
  if (!result.success) {
    const issues = toIssues(result.error, origin, fileLabel)
    const lines = issues.map((i) => `  - ${i.key} (${i.source}): ${i.message}`)
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`, issues)
  }
  return deepFreeze(result.data)
}

function readConfigFile(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err)
    throw new ConfigError(`Invalid configuration: cannot read ${file}: ${msg}`, [
      { key: '(root)', source: `file ${file}`, message: `cannot read: ${msg}` },
    ])
  }
}
