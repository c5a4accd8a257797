import type { Decoder } from '../../core/envelope/codec'
import type { Telemetry } from '../../core/envelope/telemetry'
import type { InRecord, OutRecord } from '../../core/kafka/log'
import { checkEventTime, type WatermarkOptions } from '../operators/watermark'
import { deadLetterRecord } from './job'

/** Where a refused reading goes and how event time is checked. */
export interface ReadingCheck<R extends Pick<Telemetry, 'ts'> = Telemetry> {
  job: string
  deadletterTopic: string
  /** The envelope's decoder, or a projection of it (the fields a job reads). */
  telemetry: Decoder<R>
  time: WatermarkOptions
}

/**
 * Decodes a consumed reading and checks its event time against the clock-skew cap: the
 * reading, or the dead-letter record that says why not (FS_JOBS_DECODE, FS_JOBS_FUTURE).
 */
export async function decodeReading<R extends Pick<Telemetry, 'ts'> = Telemetry>(
  r: InRecord,
  now: number,
  c: ReadingCheck<R>,
): Promise<{ reading: R } | { dead: OutRecord }> {
  let e: R
  try {
    e = await c.telemetry.decode(r.value ?? Buffer.alloc(0))
  } catch (err) {
    return { dead: deadLetterRecord(c.deadletterTopic, c.job, r, 'FS_JOBS_DECODE', (err as Error).message) }
  }
  if (checkEventTime(e.ts, now, c.time) === 'future')
    return {
      dead: deadLetterRecord(
        c.deadletterTopic,
        c.job,
        r,
        'FS_JOBS_FUTURE',
        `event time ${new Date(e.ts).toISOString()} is too far ahead of processing time`,
      ),
    }
  return { reading: e }
}
