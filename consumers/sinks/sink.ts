import type { Telemetry } from '../../core/envelope/telemetry'

/** A database error for one batch: `retriable` when trying again can help (connection lost, timeout). */
export class SinkWriteError extends Error {
  constructor(
    message: string,
    readonly retriable: boolean,
    cause?: unknown,
  ) {
    super(message, { cause })
  }
}

/** A store the telemetry sink writes to (STYLE: connect(), writeBatch(records), close()). */
export interface Sink {
  name: string
  /** Connects and runs the migrations (creates or alters the tables). */
  connect(): Promise<void>
  /** Writes readings idempotently (a replay writes nothing new); throws SinkWriteError. */
  writeBatch(readings: Telemetry[]): Promise<void>
  close(): Promise<void>
}
