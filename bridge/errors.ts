import { FleetError } from '../core/errors'

/** Why the bridge refused a message: a stable reason code, also the dead-letter header. */
export type RejectCode =
  | 'FS_BRIDGE_DECODE'
  | 'FS_BRIDGE_TYPE'
  | 'FS_BRIDGE_TOPIC'
  | 'FS_BRIDGE_TOO_LARGE'
  | 'FS_BRIDGE_LIMIT'
  | 'FS_BRIDGE_TIMESTAMP'
  | 'FS_BRIDGE_FORBIDDEN'
  | 'FS_BRIDGE_DRIFT'
  | 'FS_BRIDGE_EMPTY'
  | 'FS_BRIDGE_SCHEMA'

/** A message (or one reading of it) the bridge will not accept; it goes to the dead-letter topic. */
export class RejectError extends FleetError {
  constructor(
    code: RejectCode,
    message: string,
    readonly deviceId?: string,
    cause?: unknown,
  ) {
    super(message, { code, retriable: false, cause })
  }
}

/** The bridge cannot take more now (buffer full, Kafka slow or down): the client should retry later. */
export class PushbackError extends FleetError {
  constructor(
    message: string,
    readonly retryAfterS: number,
  ) {
    super(message, { code: 'FS_BRIDGE_PUSHBACK', retriable: true })
  }

  /** Without a stack trace: a full buffer is flow control, thrown for every message a busy
   * bridge turns away (QoS 0 drops); capturing a stack each time took a third of its CPU while
   * it was dropping. */
  static flowControl(message: string, retryAfterS: number): PushbackError {
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    try {
      return new PushbackError(message, retryAfterS)
    } finally {
      Error.stackTraceLimit = limit
    }
  }
}

/** A device failed authentication or tried to act as another device. */
export class AuthError extends FleetError {
  constructor(
    message: string,
    readonly kind: 'unauthenticated' | 'forbidden',
  ) {
    super(message, {
      code: kind === 'unauthenticated' ? 'FS_BRIDGE_AUTH' : 'FS_BRIDGE_FORBIDDEN',
      retriable: false,
    })
  }
}

/** A device exceeded its message rate. */
export class RateLimitError extends FleetError {
  constructor(
    message: string,
    readonly retryAfterS: number,
  ) {
    super(message, { code: 'FS_BRIDGE_RATE', retriable: true })
  }
}
