import { AvroCodec } from '../../core/envelope/codec'
import { LocalSchemaRegistry } from '../../core/envelope/registry'
import { createTelemetryCodec } from '../../core/envelope/telemetry'
import type { Rollup, Telemetry } from '../../schemas/types.generated'
import type { StepResult, StreamJob } from '../runtime/job'
import { telemetryRecords } from '../testing/telemetry-records'
import { rollupJob, type RollupState } from './rollup'
import { decodeDeviceWindows, encodeOpenWindows } from './rollup-state-codec'

// The rollup job's step and its changelog without Kafka (the real-Kafka tests, restarts of a
// real process included, are in rollup.int.test.ts).

const T = Date.UTC(2026, 10, 28, 6)
const MIN = 60_000
const HOUR = 3_600_000
const NOW = T + 2 * HOUR
const DEVICES = ['a', 'b', 'c']
const registry = new LocalSchemaRegistry()
const codecs = Promise.all([
  createTelemetryCodec(registry),
  AvroCodec.bundled<Rollup>(registry, 'rollup.avsc'),
])

/** Three devices, 40 readings each 15 s apart; some out of order (45 s, 135 s); metrics vary, one is rare. */
function readings(): Telemetry[] {
  const out: Telemetry[] = []
  for (let i = 0; i < 40; i++)
    DEVICES.forEach((d, k) => {
      const at = i % 11 === 6 ? i - 3 : i % 17 === 9 ? i - 9 : i // now and then out of order, or late
      const ts = T + at * 15_000 + k * 1_000
      const metrics: Telemetry['metrics'] = { temperature: 20 + ((i * 3 + k) % 7), status: 'ok' }
      if (i % 2 === 0) metrics.vibration = (i % 5) / 10
      if (d !== 'c') metrics.humidity = 50 + (i % 4)
      if (d === 'c' && i % 10 === 5) metrics.pressure = 1000 + i // rare: its hour window outlives many entries
      out.push({ deviceId: d, tenant: null, ts, receivedAt: ts, seq: i, metrics, meta: {}, source: 'mqtt' })
    })
  return out
}

async function job(maxFiringsPerStep?: number) {
  const [telemetry, rollup] = await codecs
  const j = rollupJob({
    inputTopic: 'in',
    outputs: [
      { sizeMs: MIN, topic: 'm1' },
      { sizeMs: HOUR, topic: 'h1' },
    ],
    lateTopic: 'late',
    deadletterTopic: 'dlq',
    allowedLatenessMs: 30_000,
    maxFiringsPerStep,
    time: { outOfOrdernessMs: 5_000, idleTimeoutMs: 600_000, maxFutureMs: HOUR },
    telemetry,
    rollup,
  })
  const records = (rs: Telemetry[], from: number) => telemetryRecords(telemetry, 'in', rs, from)
  /** A step's outputs as text: rollups with their aggregates, late readings by device (none here: the hour is open). */
  const text = async (step: StepResult) => {
    const out: string[] = []
    for (const o of step.outputs) {
      if (o.topic === 'late') {
        out.push(`late ${o.key}`)
        continue
      }
      const r = await rollup.decode(o.value!)
      out.push(
        `${o.topic} ${r.deviceId} ${r.metric} ${r.windowStart - T} ${r.count} ${r.sum} ${r.min} ${r.max} ${r.kind}`,
      )
    }
    return out
  }
  return { j, records, text }
}

type Entry = [string, Buffer | null]

/** What the runner does on a restart: the latest entry per key, tombstones left out, in key order of first appearance. */
function restoreFrom(j: StreamJob<RollupState>, entries: Entry[]): RollupState {
  const latest = new Map<string, Buffer | null>()
  for (const [k, v] of entries) latest.set(k, v)
  const state = j.initState()
  for (const [k, v] of latest) if (v) j.restore(state, k, v)
  return state
}

/** Runs `rs` in steps of `size`; restarts from the changelog before every step when `restart`. */
async function run(
  { j, records, text }: Awaited<ReturnType<typeof job>>,
  rs: Telemetry[],
  o: { size: number; from?: number; restart?: boolean; log?: Entry[]; state?: RollupState },
) {
  const log = o.log ?? []
  let state = o.state ?? j.initState()
  const out: string[] = []
  for (let i = 0; i < rs.length; i += o.size) {
    if (o.restart) state = restoreFrom(j, log)
    const step = await j.process(state, records(rs.slice(i, i + o.size), (o.from ?? 0) + i), NOW)
    out.push(...(await text(step)))
    log.push(...step.changelog)
  }
  const last = j.tick!(state, NOW + HOUR) // idle: the watermark moves on, every window closes
  out.push(...(await text(last)))
  log.push(...last.changelog)
  return { out, log, state }
}

describe('stream-jobs > rollup job > changelog', () => {
  it('writes one entry per changed device and step, holding the windows of all its metrics', async () => {
    const { j, records } = await job()
    const state = j.initState()
    const rs = readings().filter((r) => r.deviceId === 'a' && r.ts < T + 4 * 15_000)
    const step = await j.process(state, records(rs, 0), NOW)
    expect([...step.changelog.keys()]).toEqual(['\u0000a', '__watermark'])
    const entry = decodeDeviceWindows(step.changelog.get('\u0000a')!)
    expect(entry.map(([m]) => m).sort()).toEqual(['humidity', 'temperature', 'vibration'])
    for (const [, perOutput] of entry)
      expect(perOutput.map((w) => w?.length)).toEqual([expect.any(Number), 1])
  })

  it('continues from its changelog as if never stopped, and deletes a device whose windows all closed', async () => {
    const h = await job()
    const whole = await run(h, readings(), { size: 5 })
    expect(whole.out.filter((x) => x.endsWith(' final')).length).toBeGreaterThan(30)
    expect(whole.out.some((x) => x.endsWith(' update'))).toBe(true) // late readings inside the lateness
    const restarted = await run(h, readings(), { size: 5, restart: true })
    expect(restarted.out).toEqual(whole.out)
    // Every window fired and its lateness passed: each device's last entry is a tombstone.
    const latest = new Map(restarted.log)
    for (const d of DEVICES) expect(latest.get(`\u0000${d}`)).toBeNull()
  })

  it('reads a changelog of the format before (one key per device and metric) and deletes those keys with its first entry per device', async () => {
    const h = await job()
    const rs = readings()
    // Without a restart, in the same steps: 60 readings, 1, then 7 at a time.
    const ref = h.j.initState()
    const whole = [
      ...(await h.text(await h.j.process(ref, h.records(rs.slice(0, 60), 0), NOW))),
      ...(await h.text(await h.j.process(ref, h.records(rs.slice(60, 61), 60), NOW))),
      ...(await run(h, rs.slice(61), { size: 7, from: 61, state: ref })).out,
    ]

    // The first 60 readings, then the changelog the version before would hold for that state:
    // an entry per (device, metric) key (version 1) and the watermark.
    const state = h.j.initState()
    const step = await h.j.process(state, h.records(rs.slice(0, 60), 0), NOW)
    const before: string[] = await h.text(step)
    const old: Entry[] = [['__watermark', step.changelog.get('__watermark')!]]
    const keys = new Set(state.windows.flatMap((ws) => [...ws.keys.keys()]))
    for (const key of keys)
      old.push([
        key,
        encodeOpenWindows(state.windows.map((ws) => (ws.keys.get(key)?.length ? ws.keys.get(key)! : null))),
      ])
    expect(old.length).toBe(1 + 3 + 3 + 2 + 1) // temperature, vibration for all; humidity for a and b; pressure for c

    // Restored from it, the job continues exactly; a device's first entry deletes its old keys.
    const log = [...old]
    const restored = restoreFrom(h.j, log)
    const next = await h.j.process(restored, h.records(rs.slice(60, 61), 60), NOW)
    const written = [...next.changelog.keys()]
    for (const d of DEVICES) {
      if (!written.includes(`\u0000${d}`)) continue
      const mine = old.map(([k]) => k).filter((k) => k.startsWith(`${d}\u0000`))
      const at = written.indexOf(`\u0000${d}`)
      expect(written.slice(at - mine.length, at)).toEqual(mine) // deleted just before
      for (const k of mine) expect(next.changelog.get(k)).toBeNull()
    }
    expect(written).toContain(`\u0000${rs[60]!.deviceId}`)
    log.push(...next.changelog)
    const rest = await run(h, rs.slice(61), { size: 7, from: 61, restart: true, log })
    expect([...before, ...(await h.text(next)), ...rest.out]).toEqual(whole)
    // Every old key is deleted by now.
    const latest = new Map(rest.log)
    for (const [k] of old) if (k !== '__watermark') expect(latest.get(k)).toBeNull()
  })
})

describe('stream-jobs > rollup job > firing limit', () => {
  /** The last rollup emitted per window (what a store's upsert keeps), by topic, device, metric, start. */
  const lastPerWindow = (out: string[]) => {
    const m = new Map<string, string>()
    for (const x of out) {
      const [topic, device, metric, start, ...agg] = x.split(' ')
      if (topic === 'late') continue
      m.set(`${topic} ${device} ${metric} ${start}`, agg.slice(0, -1).join(' '))
    }
    return m
  }
  const finals = (out: string[]) => out.filter((x) => x.endsWith(' final')).length

  it('fires at most maxFiringsPerStep windows a step and the rest in the next steps: the same rollups in the end', async () => {
    const whole = await run(await job(), readings(), { size: 5 })
    const h = await job(2)
    const state = h.j.initState()
    const rs = readings()
    const out: string[] = []
    const perStep: number[] = []
    for (let i = 0; i < rs.length; i += 5) {
      const step = await h.text(await h.j.process(state, h.records(rs.slice(i, i + 5), i), NOW))
      perStep.push(finals(step))
      out.push(...step)
    }
    // Two windows a step, or a few more when the key that reaches two has several due.
    // (0,0,0,2,2,…,4,…,3,2,2: a key with several windows due, out of order, goes whole.)
    expect(Math.max(...perStep)).toBeLessThanOrEqual(4)
    expect(perStep.filter((n) => n === 2).length).toBeGreaterThan(15)
    // The first tick after readings fires no more than a step; the next (idle) fires the rest.
    const busy = await h.text(h.j.tick!(state, NOW + HOUR))
    expect(finals(busy)).toBeLessThanOrEqual(4)
    const idle = await h.text(h.j.tick!(state, NOW + HOUR))
    expect(finals(idle)).toBeGreaterThan(3)
    expect(h.j.tick!(state, NOW + HOUR).outputs).toEqual([])
    out.push(...busy, ...idle)
    expect(state.windows.every((ws) => ws.keys.size === 0)).toBe(true)
    // Fired later, a window has the same aggregate in the end (a late reading is in it rather
    // than in an update after it).
    expect(lastPerWindow(out)).toEqual(lastPerWindow(whole.out))
    expect(finals(out)).toBe(lastPerWindow(whole.out).size)
  })

  it('keeps the windows due but not yet fired in its changelog: a restart fires them', async () => {
    const whole = await run(await job(), readings(), { size: 5 })
    const restarted = await run(await job(2), readings(), { size: 5, restart: true })
    // run's last tick comes after readings (busy): one more, idle, fires what is left.
    const rest = await job(2)
    const state = restoreFrom(rest.j, restarted.log)
    const tail = await rest.text(rest.j.tick!(state, NOW + HOUR))
    expect(lastPerWindow([...restarted.out, ...tail])).toEqual(lastPerWindow(whole.out))
  })
})
