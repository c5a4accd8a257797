/**
 * Example job (see stream-jobs/README.md): activity sessions per device. A session is a run
 * of readings with no gap longer than `gapMs` in event time; when the watermark passes a
 * session's end + gap, the job emits it as JSON to `outputTopic`:
 * `{ deviceId, start, end, readings, kind }`. A reading too late for any open session is
 * dead-lettered with FS_JOBS_LATE (counted as late), never dropped silently.
 *
 * It shows the parts a job is made of: decode, event time (watermark), a window operator,
 * state written to the changelog and restored from it, dead letters, and idle ticks.
 */
import type { AvroCodec } from '../../core/envelope/codec'
import type { Telemetry } from '../../core/envelope/telemetry'
import type { InRecord, OutRecord } from '../../core/kafka/log'
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
  newWindowState,
  openWindowCount,
  restoreKey,
  snapshotKey,
  type OpenWindow,
  type WindowResult,
  type WindowState,
} from '../operators/window-aggregate'
import { decodeReading } from '../runtime/readings'
import { deadLetterRecord, defineJob, type StepResult, type StreamJob } from '../runtime/job'

export interface DeviceSessionsOptions {
  inputTopic: string
  outputTopic: string
  deadletterTopic: string
  gapMs: number
  time: WatermarkOptions
  telemetry: AvroCodec<Telemetry>
}

/** State of one input partition: its watermark and the open sessions of its devices. */
export interface DeviceSessionsState {
  wm: WatermarkState
  sessions: WindowState
}

/** One emitted session. */
export interface DeviceSession {
  deviceId: string
  start: number
  end: number
  readings: number
  kind: WindowResult['kind']
}

const WATERMARK = '__watermark'

export function deviceSessionsJob(o: DeviceSessionsOptions): StreamJob<DeviceSessionsState> {
  const toRecord = (r: WindowResult): OutRecord => {
    const s: DeviceSession = {
      deviceId: r.key,
      start: r.window.start,
      end: r.window.end,
      readings: r.agg.count,
      kind: r.kind,
    }
    return { topic: o.outputTopic, key: r.key, value: Buffer.from(JSON.stringify(s)), timestamp: s.start }
  }

  const readingCheck = {
    job: 'device-sessions',
    deadletterTopic: o.deadletterTopic,
    telemetry: o.telemetry,
    time: o.time,
  }
  const dead = (r: InRecord, code: string, reason: string) =>
    deadLetterRecord(o.deadletterTopic, 'device-sessions', r, code, reason)

  /** Emits what the watermark closed; writes the changed devices and the watermark to the changelog. */
  const finish = (state: DeviceSessionsState, outputs: OutRecord[], changed: Set<string>): StepResult => {
    const results = fire(state.sessions, state.wm.watermark, changed)
    outputs.push(...results.map(toRecord))
    const changelog = new Map<string, Buffer | null>()
    for (const key of changed) {
      const open = snapshotKey(state.sessions, key)
      changelog.set(key, open ? Buffer.from(JSON.stringify(open)) : null)
    }
    changelog.set(WATERMARK, Buffer.from(JSON.stringify(state.wm.maxEventTs)))
    return { outputs, changelog, firings: { final: results.length } }
  }

  return defineJob<DeviceSessionsState>({
    name: 'device-sessions',
    inputTopics: [o.inputTopic],
    outputTopics: [o.outputTopic, o.deadletterTopic],
    initState: () => ({
      wm: newWatermark(),
      sessions: newWindowState({ spec: { kind: 'session', gapMs: o.gapMs }, allowedLatenessMs: 0 }),
    }),
    restore(state, key, value) {
      if (key === WATERMARK) {
        const maxEventTs = JSON.parse(value.toString()) as number | null
        if (maxEventTs !== null) state.wm = observe(state.wm, maxEventTs, Date.now(), o.time)
        return
      }
      restoreKey(state.sessions, key, JSON.parse(value.toString()) as OpenWindow[])
    },
    async process(state, records, now) {
      const outputs: OutRecord[] = []
      const changed = new Set<string>()
      for (const r of records) {
        const decoded = await decodeReading(r, now, readingCheck)
        if ('dead' in decoded) {
          outputs.push(decoded.dead)
          continue
        }
        const e = decoded.reading
        state.wm = observe(state.wm, e.ts, now, o.time)
        const { results, late } = advance(
          state.sessions,
          { key: e.deviceId, ts: e.ts, value: 1 },
          state.wm.watermark,
        )
        if (late) {
          outputs.push(dead(r, 'FS_JOBS_LATE', 'later than every open session'))
          continue
        }
        outputs.push(...results.map(toRecord))
        changed.add(e.deviceId)
      }
      return finish(state, outputs, changed)
    },
    tick(state, now) {
      const before = state.wm.watermark
      state.wm = watermarkAt(state.wm, now, o.time)
      return state.wm.watermark === before
        ? { outputs: [], changelog: new Map() }
        : finish(state, [], new Set())
    },
    watermark: (state) => state.wm.watermark,
    stateSize: (state) => openWindowCount(state.sessions),
  })
}
