/** Options every fleetstream error carries: a stable code and whether a retry can help. */
export interface FleetErrorOptions {
  code: string
  retriable: boolean
  cause?: unknown
}

/**
 * Base of every error fleetstream throws. `code` is `FS_<ROLE>_<WHAT>` and never changes
 * meaning; loops pick retry or dead-letter from `retriable`, never from the message text.
 */
export class FleetError extends Error {
  readonly code: string
  readonly retriable: boolean

  constructor(message: string, opts: FleetErrorOptions) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = new.target.name
    this.code = opts.code
    this.retriable = opts.retriable
  }
}

/** Configuration that failed validation; `issues` names each bad key. */
export class ConfigError extends FleetError {
  constructor(
    message: string,
    readonly issues: readonly ConfigIssue[],
  ) {
    super(message, { code: 'FS_CORE_CONFIG', retriable: false })
  }
}

/** One problem found in configuration: the dotted key, where it came from, and what was wrong. */
export interface ConfigIssue {
  key: string
  source: string
  message: string
}

/** A value that could not be encoded or decoded as an Avro envelope. */
export class EnvelopeError extends FleetError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'FS_CORE_ENVELOPE', retriable: false, cause })
  }
}

/** A schema that is unknown, invalid, or not compatible with the version before it. */
export class SchemaError extends FleetError {
  constructor(message: string, opts: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, { code: 'FS_CORE_SCHEMA', retriable: opts.retriable ?? false, cause: opts.cause })
  }
}

/** A failure talking to the event log (Kafka or the embedded log). */
export class LogError extends FleetError {
  constructor(message: string, opts: { retriable: boolean; cause?: unknown }) {
    super(message, { code: 'FS_CORE_LOG', retriable: opts.retriable, cause: opts.cause })
  }
}
