import { addTo, aggregateOf, combine, type Aggregate } from './aggregate'
import { checkWindowSpec, floorTo, windowsFor, type Window, type WindowSpec } from './windows'

/** A numeric reading of one key (device and metric). */
export interface KeyedReading {
  key: string
  ts: number
  value: number
}

/** A window's aggregate as emitted: `final` when the watermark passes its end, `update` for a
 * late reading inside the allowed lateness (downstream upserts), `retract` when a session
 * that was already emitted merged into another one. */
export interface WindowResult {
  key: string
  window: Window
  agg: Aggregate
  kind: 'final' | 'update' | 'retract'
}

/** Settings of the windowed aggregation. */
export interface WindowOptions {
  spec: WindowSpec
  /** How long after a window closes a late reading still updates it (and re-emits it), ms. */
  allowedLatenessMs: number
}

/** One open window of a key: plain data, so it can be written to a changelog as JSON. */
export interface OpenWindow {
  window: Window
  agg: Aggregate
  /** When the watermark passing this closes the window: `end` (sessions: last reading + gap). */
  closesAt: number
  fired: boolean
}

/** The operator's state: open windows per key. Mutated in place by advance/fire (no I/O, no clock). */
export interface WindowState {
  keys: Map<string, OpenWindow[]>
  options: WindowOptions
  /**
   * No window needs the watermark before this: a lower bound of every held window's next
   * event (closing if it has not fired, purging if it has). `fire` skips its scan of every
   * key while the watermark is below it: with small batches (a paced fleet, one reading per
   * batch) that scan, once per batch over tens of thousands of keys, was most of the job.
   */
  nextDue: number
}

/** An empty state for `options` (validated). */
export function newWindowState(options: WindowOptions): WindowState {
  checkWindowSpec(options.spec)
  if (!Number.isInteger(options.allowedLatenessMs) || options.allowedLatenessMs < 0)
    throw new RangeError('allowedLatenessMs must be a non-negative integer')
  return { keys: new Map(), options, nextDue: Number.POSITIVE_INFINITY }
}

const purgeAt = (w: OpenWindow, lateness: number) => w.closesAt + lateness
/** When the watermark next matters to `w`: it closes, or (fired) it is forgotten. */
const dueAt = (w: OpenWindow, lateness: number) => (w.fired ? purgeAt(w, lateness) : w.closesAt)
/** Lowers the state's bound for a window added or changed. */
const track = (state: WindowState, w: OpenWindow) => {
  const due = dueAt(w, state.options.allowedLatenessMs)
  if (due < state.nextDue) state.nextDue = due
}

/**
 * Adds one reading at the current `watermark`. Returns the results it causes (updates of
 * windows that already fired, retractions of merged sessions) and whether it was too late
 * for every window it belongs to (then it goes to the late topic, counted).
 */
export function advance(
  state: WindowState,
  r: KeyedReading,
  watermark: number,
): { readonly results: readonly WindowResult[]; readonly late: boolean } {
  const { spec, allowedLatenessMs } = state.options
  let open = state.keys.get(r.key)
  if (!open) state.keys.set(r.key, (open = []))
  if (spec.kind === 'tumbling') return advanceTumbling(state, spec.sizeMs, open, r, watermark)
  const results: WindowResult[] = []

  if (spec.kind === 'session') {
    const single = aggregateOf(r.value, r.ts)
    const closesAt = r.ts + spec.gapMs
    // Sessions this reading touches: within the gap of their first or last reading.
    // Sessions still within their allowed lateness that this reading touches (within the gap).
    const touching = open.filter(
      (w) =>
        r.ts >= w.window.start - spec.gapMs && r.ts < w.closesAt && purgeAt(w, allowedLatenessMs) > watermark,
    )
    if (touching.length === 0 && closesAt + allowedLatenessMs <= watermark) return { results, late: true }
    let merged: OpenWindow = { window: { start: r.ts, end: r.ts + 1 }, agg: single, closesAt, fired: false }
    for (const w of touching) {
      merged = {
        window: {
          start: Math.min(merged.window.start, w.window.start),
          end: Math.max(merged.window.end, w.window.end),
        },
        agg: combine(merged.agg, w.agg),
        closesAt: Math.max(merged.closesAt, w.closesAt),
        fired: merged.fired || w.fired,
      }
      open.splice(open.indexOf(w), 1)
      if (w.fired && w.window.start !== merged.window.start)
        results.push({ key: r.key, window: w.window, agg: w.agg, kind: 'retract' })
    }
    open.push(merged)
    track(state, merged)
    if (merged.fired) results.push({ key: r.key, window: merged.window, agg: merged.agg, kind: 'update' })
    return { results, late: false }
  }

  let placed = false
  for (const window of windowsFor(r.ts, spec)) {
    if (window.end + allowedLatenessMs <= watermark) continue // too late for this window
    placed = true
    const w = open.find((o) => o.window.start === window.start)
    if (!w) {
      const added: OpenWindow = {
        window,
        agg: aggregateOf(r.value, r.ts),
        closesAt: window.end,
        fired: false,
      }
      open.push(added)
      track(state, added)
      continue
    }
    addTo(w.agg, r.value, r.ts) // in place: results below carry copies
    if (w.fired) results.push({ key: r.key, window: w.window, agg: { ...w.agg }, kind: 'update' })
  }
  return { results, late: !placed }
}

const PLACED = Object.freeze({ results: Object.freeze([] as WindowResult[]), late: false })
const LATE = Object.freeze({ results: PLACED.results, late: true })

/**
 * `advance` for tumbling windows, the rollups' hot path (a reading of every metric goes through
 * it once per window size): one window per reading, found without the array of `windowsFor`
 * and with no allocation unless a window opens or a fired one is updated.
 */
function advanceTumbling(
  state: WindowState,
  size: number,
  open: OpenWindow[],
  r: KeyedReading,
  watermark: number,
): { readonly results: readonly WindowResult[]; readonly late: boolean } {
  const start = floorTo(r.ts, size)
  if (start + size + state.options.allowedLatenessMs <= watermark) return LATE
  for (let i = 0; i < open.length; i++) {
    const w = open[i]!
    if (w.window.start !== start) continue
    addTo(w.agg, r.value, r.ts)
    if (!w.fired) return PLACED
    return { results: [{ key: r.key, window: w.window, agg: { ...w.agg }, kind: 'update' }], late: false }
  }
  const added: OpenWindow = {
    window: { start, end: start + size },
    agg: aggregateOf(r.value, r.ts),
    closesAt: start + size,
    fired: false,
  }
  open.push(added)
  track(state, added)
  return PLACED
}

/**
 * Fires every window the watermark has passed (`final`, once each) and forgets those past
 * their allowed lateness; keys whose windows changed are added to `changed` (for the
 * changelog). Results come ordered by window end, then key, then start.
 *
 * `limit`: the scan stops once this many results are in (it may pass it by the windows of the
 * last key scanned), and the windows not yet fired stay due (`hasDue`) for the next call. Every device's windows close at
 * the same watermark: at 10,000 devices × 4 metrics, one step emitting all ~40,000 rollups
 * and their changelog held the job's thread for over half a second (the readings behind it
 * waited); in steps of a few thousand the other work runs in between. A window fired later
 * this way has the same aggregate: a reading for it that arrives meanwhile is late (past the
 * watermark) unless the allowed lateness takes it, and then it is in the window when it fires.
 */
export function fire(
  state: WindowState,
  watermark: number,
  changed?: Set<string>,
  limit = Infinity,
): WindowResult[] {
  const results: WindowResult[] = []
  if (watermark < state.nextDue) return results
  const lateness = state.options.allowedLatenessMs
  let nextDue = Number.POSITIVE_INFINITY
  for (const [key, open] of state.keys) {
    if (results.length >= limit) {
      nextDue = Number.NEGATIVE_INFINITY // keys not scanned: look again next time
      break
    }
    let purged = 0
    for (const w of open) {
      if (!w.fired && w.closesAt <= watermark) {
        w.fired = true
        changed?.add(key)
        results.push({ key, window: w.window, agg: { ...w.agg }, kind: 'final' })
      }
      if (purgeAt(w, lateness) <= watermark) purged++
      else nextDue = Math.min(nextDue, dueAt(w, lateness))
    }
    if (purged === 0) continue
    changed?.add(key)
    if (purged === open.length) state.keys.delete(key)
    else
      state.keys.set(
        key,
        open.filter((w) => purgeAt(w, lateness) > watermark),
      )
  }
  state.nextDue = nextDue
  return results.sort(
    (a, b) =>
      a.window.end - b.window.end ||
      (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) ||
      a.window.start - b.window.start,
  )
}

/** Whether `fire` at `watermark` has anything to do (a window to fire or to forget). */
export function hasDue(state: WindowState, watermark: number): boolean {
  return watermark >= state.nextDue
}

/** A key's open windows, for its changelog entry; undefined when it has none (a tombstone). */
export function snapshotKey(state: WindowState, key: string): OpenWindow[] | undefined {
  const open = state.keys.get(key)
  return open && open.length ? open : undefined
}

/** Puts back a key's open windows read from the changelog (undefined: the key has none). */
export function restoreKey(state: WindowState, key: string, windows: OpenWindow[] | undefined): void {
  if (windows && windows.length) {
    state.keys.set(key, windows)
    for (const w of windows) track(state, w)
  } else state.keys.delete(key)
}

/** How many windows are held (open, or fired and kept for their allowed lateness). */
export function openWindowCount(state: WindowState): number {
  let n = 0
  for (const open of state.keys.values()) n += open.length
  return n
}
