// Generated from schemas/*.avsc by scripts/gen-schema-types.ts. Do not edit by hand.

/** Symbols of the Avro enum Source. */
export type Source = 'mqtt' | 'http' | 'bridge'

/** One device reading as it travels through fleetstream (the envelope of every telemetry topic). */
export interface Telemetry {
  /** Device id; also the Kafka record key. */
  deviceId: string
  /** Owning tenant, when known. */
  tenant: null | string
  /** Event time (ms since epoch). */
  ts: number
  /** When the bridge received it (ms since epoch). */
  receivedAt: number
  /** Device sequence number, when the device sends one. */
  seq: null | number
  /** Readings by metric name. */
  metrics: Record<string, number | boolean | string>
  /** Device-reported attributes (firmware, battery) and flags. */
  meta: Record<string, string>
  /** How the reading entered fleetstream. */
  source: Source
}
