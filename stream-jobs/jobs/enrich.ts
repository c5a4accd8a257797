import type { AvroCodec } from '../../core/envelope/codec'
import type { Telemetry } from '../../core/envelope/telemetry'
import type { InRecord, OutRecord } from '../../core/kafka/log'
import type { Device } from '../../schemas/types.generated'
import { deadLetterRecord, defineJob, type StreamJob } from '../runtime/job'

/** What to do with a reading of a device the registry does not know. */
export type UnknownDevicePolicy = 'pass' | 'deadletter'

/** Settings of the enrichment job. */
export interface EnrichJobOptions {
  rawTopic: string
  devicesTopic: string
  enrichedTopic: string
  deadletterTopic: string
  unknownDevices: UnknownDevicePolicy
  telemetry: AvroCodec<Telemetry>
  device: AvroCodec<Device>
}

/** Per partition: the registry entries of the devices whose records land on it. */
export interface EnrichState {
  devices: Map<string, Device>
}

/**
 * Joins raw telemetry with the compacted device registry (`iot.devices`), co-partitioned by
 * device id: the reading gets the device's tenant (when it has none), and `site`, `model` and
 * `tag.<name>` in `meta`. A registry update applies from the next reading on, with no restart.
 * Readings of unknown devices pass with `meta.unknown_device=true`, or go to the dead-letter
 * topic, by policy.
 */
export function enrichJob(o: EnrichJobOptions): StreamJob<EnrichState> {
  const deadLetter = (r: InRecord, code: string, reason: string) =>
    deadLetterRecord(o.deadletterTopic, 'enrich', r, code, reason)
  return defineJob<EnrichState>({
    name: 'enrich',
    inputTopics: [o.devicesTopic, o.rawTopic],
    outputTopics: [o.enrichedTopic, o.deadletterTopic],
    initState: () => ({ devices: new Map() }),
    restore(state, key, value) {
      state.devices.set(key, JSON.parse(value.toString()) as Device)
    },
    async process(state, records) {
      const outputs: OutRecord[] = []
      const changelog = new Map<string, Buffer | null>()
      for (const r of records) {
        if (r.topic === o.devicesTopic) {
          if (r.key === null) continue
          if (r.value === null) {
            state.devices.delete(r.key)
            changelog.set(r.key, null)
            continue
          }
          try {
            const d = await o.device.decode(r.value)
            state.devices.set(d.deviceId, d)
            changelog.set(d.deviceId, Buffer.from(JSON.stringify(d)))
          } catch (err) {
            outputs.push(deadLetter(r, 'FS_JOBS_DECODE', (err as Error).message))
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
        if (!d && o.unknownDevices === 'deadletter') {
          outputs.push(deadLetter(r, 'FS_JOBS_UNKNOWN_DEVICE', `device ${e.deviceId} is not in the registry`))
          continue
        }
        const meta = { ...e.meta }
        if (d) {
          if (d.site) meta.site = d.site
          if (d.model) meta.model = d.model
          for (const [k, v] of Object.entries(d.tags)) meta[`tag.${k}`] = v
        } else {
          meta.unknown_device = 'true'
        }
        const enriched: Telemetry = { ...e, tenant: e.tenant ?? d?.tenant ?? null, meta }
        outputs.push({
          topic: o.enrichedTopic,
          key: e.deviceId,
          value: o.telemetry.encode(enriched),
          timestamp: e.ts,
        })
      }
      return { outputs, changelog }
    },
    stateSize: (state) => state.devices.size,
  })
}
