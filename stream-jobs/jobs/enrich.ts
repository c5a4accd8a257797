import type { AvroCodec } from '../../core/envelope/codec'
import type { Telemetry } from '../../core/envelope/telemetry'
import type { InRecord, OutRecord } from '../../core/kafka/log'
import type { Device } from '../../schemas/types.generated'
import { deadLetterRecord, defineJob, type StepResult, type StreamJob } from '../runtime/job'
import { applyDeviceRecord, restoreDevice } from './device-table'

/** What to do with a reading of a device the registry does not know. */
export type UnknownDevicePolicy = 'pass' | 'hold' | 'deadletter'

/** Settings of the enrichment job. */
export interface EnrichJobOptions {
  rawTopic: string
  devicesTopic: string
  enrichedTopic: string
  deadletterTopic: string
  unknownDevices: UnknownDevicePolicy
  /** `hold`: how long a reading waits for its device to be registered (processing time), ms. */
  holdMs?: number
  /** `hold`: most readings held per partition; beyond that they are dead-lettered. */
  maxHeld?: number
  telemetry: AvroCodec<Telemetry>
  device: AvroCodec<Device>
}

/** A reading held until its device is registered: the consumed record and when it was held. */
interface HeldRecord {
  record: InRecord
  heldAt: number
}

/** Per partition: the registry entries of the devices whose records land on it, and held readings. */
export interface EnrichState {
  devices: Map<string, Device>
  held: Map<string, HeldRecord[]>
  heldCount: number
}

/** Changelog keys of held readings: `held` NUL device id (device ids hold no NUL). */
const HELD = 'held\u0000'

/** A held reading as a changelog value (JSON: bytes in base64). */
const heldToJson = (h: HeldRecord) => ({
  heldAt: h.heldAt,
  topic: h.record.topic,
  partition: h.record.partition,
  offset: h.record.offset,
  key: h.record.key,
  value: h.record.value?.toString('base64') ?? null,
  timestamp: h.record.timestamp,
})
const heldFromJson = (j: ReturnType<typeof heldToJson>): HeldRecord => ({
  heldAt: j.heldAt,
  record: {
    topic: j.topic,
    partition: j.partition,
    offset: j.offset,
    key: j.key,
    value: j.value === null ? null : Buffer.from(j.value, 'base64'),
    headers: {},
    timestamp: j.timestamp,
  },
})

/**
 * Joins raw telemetry with the compacted device registry (`iot.devices`), co-partitioned by
 * device id: the reading gets the device's tenant (when it has none), and `site`, `model` and
 * `tag.<name>` in `meta`. A registry update applies from the next reading on, with no restart.
 * Readings of unknown devices pass with `meta.unknown_device=true`, go to the dead-letter
 * topic, or are held (in changelogged state) until the device is registered, for at most
 * `holdMs`, then dead-lettered, by policy.
 */
export function enrichJob(o: EnrichJobOptions): StreamJob<EnrichState> {
  const holdMs = o.holdMs ?? 60_000
  const maxHeld = o.maxHeld ?? 10_000
  const deadLetter = (r: InRecord, code: string, reason: string) =>
    deadLetterRecord(o.deadletterTopic, 'enrich', r, code, reason)

  const enriched = (e: Telemetry, d: Device | undefined): OutRecord => {
    const meta = { ...e.meta }
    if (d) {
      if (d.site) meta.site = d.site
      if (d.model) meta.model = d.model
      for (const [k, v] of Object.entries(d.tags)) meta[`tag.${k}`] = v
    } else {
      meta.unknown_device = 'true'
    }
    return {
      topic: o.enrichedTopic,
      key: e.deviceId,
      value: o.telemetry.encode({ ...e, tenant: e.tenant ?? d?.tenant ?? null, meta }),
      timestamp: e.ts,
    }
  }

  const setHeld = (
    state: EnrichState,
    id: string,
    list: HeldRecord[],
    changelog: StepResult['changelog'],
  ) => {
    state.heldCount += list.length - (state.held.get(id)?.length ?? 0)
    if (list.length) state.held.set(id, list)
    else state.held.delete(id)
    changelog.set(HELD + id, list.length ? Buffer.from(JSON.stringify(list.map(heldToJson))) : null)
  }

  return defineJob<EnrichState>({
    name: 'enrich',
    inputTopics: [o.devicesTopic, o.rawTopic],
    tableTopics: [o.devicesTopic],
    outputTopics: [o.enrichedTopic, o.deadletterTopic],
    initState: () => ({ devices: new Map(), held: new Map(), heldCount: 0 }),
    restore(state, key, value) {
      if (key.startsWith(HELD)) {
        const list = (JSON.parse(value.toString()) as ReturnType<typeof heldToJson>[]).map(heldFromJson)
        state.heldCount += list.length - (state.held.get(key.slice(HELD.length))?.length ?? 0)
        state.held.set(key.slice(HELD.length), list)
        return
      }
      restoreDevice(state.devices, key, value)
    },
    async process(state, records, now) {
      const outputs: OutRecord[] = []
      const changelog = new Map<string, Buffer | null>()
      for (const r of records) {
        if (r.topic === o.devicesTopic) {
          const change = await applyDeviceRecord(state.devices, r, o.device, changelog)
          if (change.kind === 'invalid') outputs.push(deadLetter(r, 'FS_JOBS_DECODE', change.error))
          if (change.kind !== 'updated') continue
          // Readings held for this device go out now, in arrival order.
          const d = change.device
          const waiting = state.held.get(d.deviceId)
          if (waiting) {
            for (const h of waiting) outputs.push(enriched(await o.telemetry.decode(h.record.value!), d))
            setHeld(state, d.deviceId, [], changelog)
          }
          continue
        }
        let e: Telemetry
        try {
          e = await o.telemetry.decode(r.value ?? Buffer.alloc(0))
        } catch (err) {
          outputs.push(deadLetter(r, 'FS_JOBS_DECODE', (err as Error).message))
          continue
        }
        const d = state.devices.get(e.deviceId)
        if (d || o.unknownDevices === 'pass') {
          outputs.push(enriched(e, d))
        } else if (o.unknownDevices === 'deadletter') {
          outputs.push(deadLetter(r, 'FS_JOBS_UNKNOWN_DEVICE', `device ${e.deviceId} is not in the registry`))
        } else if (state.heldCount >= maxHeld) {
          outputs.push(
            deadLetter(r, 'FS_JOBS_HOLD_FULL', `${maxHeld} readings already wait for unregistered devices`),
          )
        } else {
          const list = [...(state.held.get(e.deviceId) ?? []), { record: r, heldAt: now }]
          setHeld(state, e.deviceId, list, changelog)
        }
      }
      return { outputs, changelog }
    },
    tick(state, now) {
      // Held readings whose device did not appear within holdMs are dead-lettered.
      const outputs: OutRecord[] = []
      const changelog = new Map<string, Buffer | null>()
      for (const [id, list] of state.held) {
        const keep = list.filter((h) => now - h.heldAt < holdMs)
        if (keep.length === list.length) continue
        for (const h of list.filter((x) => now - x.heldAt >= holdMs))
          outputs.push(
            deadLetter(
              h.record,
              'FS_JOBS_UNKNOWN_DEVICE',
              `device ${id} was not registered within ${holdMs} ms`,
            ),
          )
        setHeld(state, id, keep, changelog)
      }
      return { outputs, changelog }
    },
    stateSize: (state) => state.devices.size + state.heldCount,
  })
}
