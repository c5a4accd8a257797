import { EnvelopeError } from '../errors'

/** Confluent wire format: magic byte 0, then the schema id as a big-endian int32, then Avro. */
export const MAGIC_BYTE = 0
/** Bytes before the Avro payload. */
export const WIRE_HEADER_LENGTH = 5

/** Frames an Avro payload with its schema id, as Confluent serializers do. */
export function encodeWire(schemaId: number, avro: Buffer): Buffer {
  const out = Buffer.allocUnsafe(WIRE_HEADER_LENGTH + avro.length)
  writeWireHeader(out, schemaId)
  avro.copy(out, WIRE_HEADER_LENGTH)
  return out
}

/** Writes the 5-byte header at the start of `out`, whose Avro payload follows it. */
export function writeWireHeader(out: Buffer, schemaId: number): void {
  if (!Number.isInteger(schemaId) || schemaId < 0 || schemaId > 0x7fffffff) {
    throw new EnvelopeError(`schema id must be a non-negative int32, got ${schemaId}`)
  }
  out[0] = MAGIC_BYTE
  out.writeInt32BE(schemaId, 1)
}

/** The schema id of a framed value, or null when it is not in the wire format (no copy, no throw). */
export function wireSchemaId(value: Buffer | null): number | null {
  if (!value || value.length < WIRE_HEADER_LENGTH || value[0] !== MAGIC_BYTE) return null
  return value.readInt32BE(1)
}

/** Splits a framed value into schema id and Avro payload; rejects anything not in the format. */
export function decodeWire(value: Buffer): { schemaId: number; payload: Buffer } {
  if (value.length < WIRE_HEADER_LENGTH) {
    throw new EnvelopeError(`value of ${value.length} bytes is too short for the wire format (5-byte header)`)
  }
  if (value[0] !== MAGIC_BYTE) {
    throw new EnvelopeError(`unknown magic byte ${value[0]} (expected ${MAGIC_BYTE}: Confluent wire format)`)
  }
  return { schemaId: value.readInt32BE(1), payload: value.subarray(WIRE_HEADER_LENGTH) }
}
