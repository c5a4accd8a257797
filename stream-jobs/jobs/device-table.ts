import type { AvroCodec } from '../../core/envelope/codec'
import type { InRecord } from '../../core/kafka/log'
import type { Device } from '../../schemas/types.generated'

/** What a record of the device registry topic did to a job's copy of the registry. */
export type DeviceChange =
  | { kind: 'updated'; device: Device }
  | { kind: 'removed'; deviceId: string }
  | { kind: 'invalid'; error: string }
  | { kind: 'ignored' }

/**
 * Applies one record of the compacted registry topic (`iot.devices`, co-partitioned with
 * telemetry) to a job's per-partition copy, and writes the change to the job's changelog
 * under `prefix + deviceId` (JSON), so the copy is restored with the rest of the state.
 */
export async function applyDeviceRecord(
  devices: Map<string, Device>,
  r: InRecord,
  codec: AvroCodec<Device>,
  changelog: Map<string, Buffer | null>,
  prefix = '',
): Promise<DeviceChange> {
  if (r.key === null) return { kind: 'ignored' }
  if (r.value === null) {
    devices.delete(r.key)
    changelog.set(prefix + r.key, null)
    return { kind: 'removed', deviceId: r.key }
  }
  let d: Device
  try {
    d = await codec.decode(r.value)
  } catch (err) {
    return { kind: 'invalid', error: (err as Error).message }
  }
  devices.set(d.deviceId, d)
  changelog.set(prefix + d.deviceId, Buffer.from(JSON.stringify(d)))
  return { kind: 'updated', device: d }
}

/** Puts back a registry entry read from the changelog. */
export function restoreDevice(devices: Map<string, Device>, deviceId: string, value: Buffer): void {
  devices.set(deviceId, JSON.parse(value.toString()) as Device)
}
