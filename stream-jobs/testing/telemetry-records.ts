import type { AvroCodec } from '../../core/envelope/codec'
import type { InRecord } from '../../core/kafka/log'
import type { Telemetry } from '../../schemas/types.generated'

/** Readings as a job's step receives them: one partition of `topic`, offsets from `from`, keyed by device. */
export function telemetryRecords(
  telemetry: AvroCodec<Telemetry>,
  topic: string,
  rs: Telemetry[],
  from = 0,
): InRecord[] {
  return rs.map((r, i) => ({
    topic,
    partition: 0,
    offset: String(from + i),
    key: r.deviceId,
    value: telemetry.encode(r),
    headers: {},
    timestamp: r.receivedAt,
  }))
}
