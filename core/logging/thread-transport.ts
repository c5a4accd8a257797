import Transport from 'winston-transport'
import { redact } from './logger'

/** A log line on its way from a worker thread to the main thread's logger. */
export interface ThreadLogLine {
  type: 'log'
  level: string
  message: string
  fields: object
}

/**
 * A winston transport for a worker thread: each line is posted to the main thread, which
 * writes it with its own logger (its transports, levels and redaction). Fields are redacted
 * here too, before they leave the thread.
 */
export class ToMainThread extends Transport {
  constructor(private readonly post: (line: ThreadLogLine) => void) {
    super()
  }

  override log(info: Record<string, unknown>, done: () => void): void {
    const { level, message, ...fields } = info
    this.post({
      type: 'log',
      level: String(level),
      message: String(message),
      fields: redact(fields) as object,
    })
    done()
  }
}
