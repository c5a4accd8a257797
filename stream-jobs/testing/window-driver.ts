import {
  newWindowState,
  advance,
  fire,
  type KeyedReading,
  type WindowOptions,
  type WindowResult,
  type WindowState,
} from '../operators/window-aggregate'
import {
  newWatermark,
  observe,
  watermarkAt,
  type WatermarkOptions,
  type WatermarkState,
} from '../operators/watermark'

/**
 * Drives the windowed aggregation with no broker: pipe readings (with the processing time they
 * arrive at), move processing time, read what was emitted and what was late. The same
 * functions the Kafka loop calls, in the same order.
 */
export class WindowTestDriver {
  readonly results: WindowResult[] = []
  readonly late: KeyedReading[] = []
  private readonly state: WindowState
  private wm: WatermarkState = newWatermark()

  constructor(
    options: WindowOptions,
    private readonly time: WatermarkOptions,
  ) {
    this.state = newWindowState(options)
  }

  /** The current watermark. */
  get watermark(): number {
    return this.wm.watermark
  }

  /** One reading arriving at processing time `now` (defaults to its event time). */
  pipe(r: KeyedReading, now = r.ts): this {
    this.wm = observe(this.wm, r.ts, now, this.time)
    const { results, late } = advance(this.state, r, this.wm.watermark)
    this.results.push(...results)
    if (late) this.late.push(r)
    this.results.push(...fire(this.state, this.wm.watermark))
    return this
  }

  /** Processing time moves to `now` with no reading: idle streams advance their watermark. */
  tick(now: number): this {
    this.wm = watermarkAt(this.wm, now, this.time)
    this.results.push(...fire(this.state, this.wm.watermark))
    return this
  }

  /** The state (open windows), for memory figures and assertions. */
  get windowState(): WindowState {
    return this.state
  }
}
