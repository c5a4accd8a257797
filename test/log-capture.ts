import Transport from 'winston-transport'

/** A winston transport that keeps what would be written, as parsed JSON lines (for logger tests). */
export class LogCapture extends Transport {
  readonly lines: Record<string, unknown>[] = []
  override log(info: Record<symbol | string, unknown>, next: () => void): void {
    this.lines.push(JSON.parse(info[Symbol.for('message')] as string))
    next()
  }
}
