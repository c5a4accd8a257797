import type { AvroCodec } from '../../core/envelope/codec'
import type { Telemetry } from '../../core/envelope/telemetry'
import type { OutRecord } from '../../core/kafka/log'
import type { Rollup } from '../../schemas/types.generated'
import { avg } from '../operators/aggregate'
import {
  newWatermark,
  observe,
  watermarkAt,
  type WatermarkOptions,
  type WatermarkState,
} from '../operators/watermark'
import {
  advance,
  fire,
  hasDue,
  newWindowState,
  openWindowCount,
  restoreKey,
  snapshotKey,
  type OpenWindow,
  type WindowResult,
  type WindowState,
} from '../operators/window-aggregate'
import { decodeReading } from '../runtime/readings'
import {
  decodeDeviceWindows,
  decodeOpenWindows,
  encodeDeviceWindows,
  type MetricWindows,
} from './rollup-state-codec'
import { defineJob, type StepResult, type StreamJob } from '../runtime/job'

/** One rollup output: a tumbling window size and the topic it goes to. */
export interface RollupOutput {
  sizeMs: number
  topic: string
}

/** Settings of the rollup job. */
export interface RollupJobOptions {
  inputTopic: string
  outputs: RollupOutput[]
  lateTopic: string
  deadletterTopic: string
  allowedLatenessMs: number
  /** At most this many windows fired in one step (per input partition); the rest in the next
   * steps (see `fire`). Default: no limit. */
  maxFiringsPerStep?: number
  time: WatermarkOptions
  telemetry: AvroCodec<Telemetry>
  rollup: AvroCodec<Rollup>
}

/** Per input partition: the partition's watermark and one window state per output. */
export interface RollupState {
  wm: WatermarkState
  windows: WindowState[]
  /** Per device, the metrics it has windows of (a device's changelog entry holds them all). */
  metrics: Map<string, Set<string>>
  /** Per device, its (device, metric) changelog keys written before version 2, to delete. */
  legacy: Map<string, string[]>
  /** A batch was processed since the last tick: readings are flowing, so the tick fires no
   * more than a step does. A tick on an idle partition fires whatever is due. */
  busy: boolean
}

type Firings = NonNullable<StepResult['firings']>

const WATERMARK_KEY = '__watermark'
const SEP = '\u0000'

/**
 * Rolls numeric metrics of telemetry up into tumbling windows per device and metric (by
 * default 1 minute → `iot.rollups.1m` and 1 hour → `iot.rollups.1h`). Event time with a
 * per-partition watermark; a late reading inside the allowed lateness re-emits a corrected
 * rollup (`update`); later than that it goes to the late topic. Non-numeric metrics are not
 * rolled up.
 */
export function rollupJob(o: RollupJobOptions): StreamJob<RollupState> {
  const newState = (): RollupState => ({
    wm: newWatermark(),
    windows: o.outputs.map((out) =>
      newWindowState({
        spec: { kind: 'tumbling', sizeMs: out.sizeMs },
        allowedLatenessMs: o.allowedLatenessMs,
      }),
    ),
    metrics: new Map(),
    legacy: new Map(),
    busy: false,
  })
  const metricsOf = (state: RollupState, deviceId: string): Set<string> => {
    let ms = state.metrics.get(deviceId)
    if (ms === undefined) state.metrics.set(deviceId, (ms = new Set()))
    return ms
  }

  const rollupRecord = (out: RollupOutput, r: WindowResult): OutRecord => {
    const [deviceId, metric] = r.key.split(SEP) as [string, string]
    const value: Rollup = {
      deviceId,
      metric,
      windowStart: r.window.start,
      windowEnd: r.window.end,
      count: r.agg.count,
      min: r.agg.min,
      max: r.agg.max,
      sum: r.agg.sum,
      avg: avg(r.agg),
      first: r.agg.first,
      last: r.agg.last,
      kind: r.kind,
    }
    return { topic: out.topic, key: deviceId, value: o.rollup.encode(value), timestamp: r.window.start }
  }

  /**
   * Fires what the watermark passed and writes the changed devices to the changelog: one entry
   * per device (key SEP + device id) with the open windows of all its metrics, or a tombstone
   * when it has none. One entry per reading rather than one per metric: each changelog record
   * costs the log a record and the restore an entry. A device's first entry deletes the
   * (device, metric) keys of the format before, in the same transaction.
   */
  const finish = (
    state: RollupState,
    outputs: OutRecord[],
    changed: Set<string>,
    firings: Firings = {},
    limit = o.maxFiringsPerStep ?? Number.POSITIVE_INFINITY,
  ): StepResult => {
    let budget = limit
    state.windows.forEach((ws, i) => {
      const fired = fire(ws, state.wm.watermark, changed, Math.max(0, budget))
      budget -= fired.length
      for (const r of fired) emit(outputs, firings, o.outputs[i]!, r)
    })
    const devices = new Set<string>()
    for (const key of changed) {
      const at = key.indexOf(SEP)
      const deviceId = key.slice(0, at)
      devices.add(deviceId)
      metricsOf(state, deviceId).add(key.slice(at + 1))
    }
    const changelog = new Map<string, Buffer | null>()
    for (const deviceId of devices) {
      const old = state.legacy.get(deviceId)
      if (old !== undefined) {
        for (const key of old) changelog.set(key, null)
        state.legacy.delete(deviceId)
      }
      const ms = state.metrics.get(deviceId)!
      const entry: MetricWindows[] = []
      for (const metric of ms) {
        const key = `${deviceId}${SEP}${metric}`
        const snaps = state.windows.map((ws) => snapshotKey(ws, key) ?? null)
        if (snaps.every((x) => x === null)) ms.delete(metric)
        else entry.push([metric, snaps])
      }
      if (entry.length === 0) state.metrics.delete(deviceId)
      changelog.set(`${SEP}${deviceId}`, entry.length > 0 ? encodeDeviceWindows(entry) : null)
    }
    changelog.set(
      WATERMARK_KEY,
      Buffer.from(JSON.stringify({ maxEventTs: state.wm.maxEventTs, watermark: state.wm.watermark })),
    )
    return { outputs, changelog, firings }
  }

  const readingCheck = {
    job: 'rollup',
    deadletterTopic: o.deadletterTopic,
    // The three fields the job reads; the others (meta above all: a map of strings) are skipped.
    telemetry: o.telemetry.projection(['deviceId', 'ts', 'metrics']),
    time: o.time,
  }
  const emit = (outputs: OutRecord[], firings: Firings, out: RollupOutput, r: WindowResult) => {
    outputs.push(rollupRecord(out, r))
    firings[r.kind] = (firings[r.kind] ?? 0) + 1
  }

  return defineJob<RollupState>({
    name: 'rollup',
    inputTopics: [o.inputTopic],
    outputTopics: [...o.outputs.map((x) => x.topic), o.lateTopic, o.deadletterTopic],
    initState: newState,
    restore(state, key, value) {
      if (key === WATERMARK_KEY) {
        const w = JSON.parse(value.toString()) as { maxEventTs: number | null; watermark: number | null }
        // JSON has no -Infinity: null means "nothing seen yet".
        state.wm = {
          maxEventTs: w.maxEventTs ?? Number.NEGATIVE_INFINITY,
          watermark: w.watermark ?? Number.NEGATIVE_INFINITY,
          lastArrival: Date.now(),
        }
        return
      }
      const put = (k: string, perOutput: (OpenWindow[] | null)[]) =>
        perOutput.forEach((snap, i) => state.windows[i] && restoreKey(state.windows[i], k, snap ?? undefined))
      if (key.startsWith(SEP)) {
        const deviceId = key.slice(SEP.length)
        const ms = metricsOf(state, deviceId)
        for (const [metric, perOutput] of decodeDeviceWindows(value)) {
          ms.add(metric)
          put(`${deviceId}${SEP}${metric}`, perOutput)
        }
        return
      }
      // A (device, metric) key of the format before version 2. A device's entry of version 2 is
      // written in the same transaction as the deletion of these keys: both are never restored.
      const at = key.indexOf(SEP)
      const deviceId = key.slice(0, at)
      metricsOf(state, deviceId).add(key.slice(at + 1))
      const old = state.legacy.get(deviceId)
      if (old === undefined) state.legacy.set(deviceId, [key])
      else old.push(key)
      put(key, decodeOpenWindows(value))
    },
    async process(state, records, now) {
      const outputs: OutRecord[] = []
      const firings: Firings = {}
      const changed = new Set<string>()
      state.busy = true
      for (const r of records) {
        const decoded = await decodeReading(r, now, readingCheck)
        if ('dead' in decoded) {
          outputs.push(decoded.dead)
          continue
        }
        const e = decoded.reading
        state.wm = observe(state.wm, e.ts, now, o.time)
        let numeric = false
        let placed = false
        for (const metric in e.metrics) {
          const value = e.metrics[metric]
          if (typeof value !== 'number') continue
          numeric = true
          const reading = { key: `${e.deviceId}${SEP}${metric}`, ts: e.ts, value }
          for (let i = 0; i < state.windows.length; i++) {
            const { results, late } = advance(state.windows[i]!, reading, state.wm.watermark)
            if (!late) placed = true
            for (const x of results) emit(outputs, firings, o.outputs[i]!, x)
          }
          changed.add(reading.key)
        }
        if (numeric && !placed)
          outputs.push({
            topic: o.lateTopic,
            key: r.key,
            value: r.value,
            headers: { 'fs-reason-code': 'FS_JOBS_LATE' },
          })
      }
      return finish(state, outputs, changed, firings)
    },
    tick(state, now) {
      const before = state.wm.watermark
      state.wm = watermarkAt(state.wm, now, o.time)
      const due = state.windows.some((ws) => hasDue(ws, state.wm.watermark))
      const busy = state.busy
      state.busy = false
      if (state.wm.watermark === before && !due) return { outputs: [], changelog: new Map() }
      return finish(state, [], new Set(), {}, busy ? undefined : Number.POSITIVE_INFINITY)
    },
    watermark: (state) => state.wm.watermark,
    stateSize: (state) => state.windows.reduce((n, ws) => n + openWindowCount(ws), 0),
  })
}
