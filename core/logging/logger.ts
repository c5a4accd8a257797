import winston from 'winston'
import type Transport from 'winston-transport'
import { logLevels, type LogLevel } from '../config/schema'

/** The logger every role takes from its deps: winston's, so `child({ component })` works. */
export type Logger = winston.Logger

/** Options of the root logger. */
export interface LoggerOptions {
  level?: LogLevel
  /** Levels per component, matched on the `component` field or its dotted prefix. */
  levels?: Readonly<Record<string, LogLevel>>
  /** Where lines go; defaults to stdout. Tests pass their own transport. */
  transports?: Transport[]
}

const REDACTED = '[redacted]'
/** Field names whose values are secrets, wherever they appear in a log entry. */
const SECRET_KEY = /pass(word)?|secret|token|api[-_]?key|authorization|credential|private[-_]?key/i
/** `scheme://user:password@host` → password hidden. */
const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/[^:/?#\s@]+:)([^@/\s]+)@/gi

/** Returns `text` with passwords inside URLs replaced. */
export function redactText(text: string): string {
  return text.replace(URL_CREDENTIALS, `$1${REDACTED}@`)
}

/** A deep copy of `value` with secret fields and URL passwords replaced. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 8) return value
  if (typeof value === 'string') return redactText(value)
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1))
  if (value instanceof Error) {
    // Error fields are not enumerable: write them out, or the log shows `{}`.
    const { name, message, stack } = value
    const code = (value as { code?: unknown }).code
    return redact({ name, message, ...(code === undefined ? {} : { code }), stack }, depth + 1)
  }
  if (value && typeof value === 'object' && !(value instanceof Date) && !Buffer.isBuffer(value)) {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      out[k] =
        SECRET_KEY.test(k) && v !== undefined && v !== null && typeof v !== 'object'
          ? REDACTED
          : redact(v, depth + 1)
    }
    return out
  }
  return value
}

const severity = (level: string): number => {
  const i = (logLevels as readonly string[]).indexOf(level)
  return i === -1 ? logLevels.length : i
}

/** The configured level of `component`: the longest matching dotted prefix, else the default. */
export function levelFor(
  component: string | undefined,
  level: LogLevel,
  levels: Readonly<Record<string, LogLevel>>,
): LogLevel {
  if (!component) return level
  let best: string | undefined
  for (const prefix of Object.keys(levels)) {
    if (
      (component === prefix || component.startsWith(`${prefix}.`)) &&
      (!best || prefix.length > best.length)
    )
      best = prefix
  }
  return best ? (levels[best] as LogLevel) : level
}

/** Creates the root logger: JSON lines, secrets redacted, levels per component. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? 'info'
  const levels = opts.levels ?? {}
  // The transport lets through the most verbose configured level; this format then drops
  // what a component's own level does not want.
  const mostVerbose = [level, ...Object.values(levels)].reduce((a, b) => (severity(b) > severity(a) ? b : a))
  const byComponent = winston.format((info) =>
    severity(info.level) <= severity(levelFor(info.component as string | undefined, level, levels))
      ? info
      : false,
  )
  const redactFormat = winston.format((info) => {
    for (const key of Object.keys(info)) {
      const v = info[key]
      info[key] =
        SECRET_KEY.test(key) && v !== undefined && v !== null && typeof v !== 'object' ? REDACTED : redact(v)
    }
    if (typeof info.message === 'string') info.message = redactText(info.message)
    return info
  })
  return winston.createLogger({
    level: mostVerbose,
    levels: winston.config.npm.levels,
    format: winston.format.combine(
      byComponent(),
      winston.format.errors({ stack: true }),
      redactFormat(),
      winston.format.timestamp(),
      winston.format.json(),
    ),
    transports: opts.transports ?? [new winston.transports.Console()],
  })
}

/** Fields of one data-flow trace line: where a message is and which one it is. */
export interface FlowFields {
  deviceId?: string
  topic?: string
  partition?: number
  offset?: string
  [key: string]: unknown
}

/**
 * Traces a message's path (`DEBUG_DATA_FLOW=true`). Returns a no-op when disabled so the
 * hot path pays one call, not a log entry.
 */
export function dataFlowTracer(
  logger: Logger,
  enabled: boolean,
): (stage: string, fields: FlowFields) => void {
  if (!enabled) return () => undefined
  const flow = logger.child({ component: 'dataflow' })
  return (stage, fields) => flow.info('data flow', { stage, ...fields })
}
