import type { InRecord, OutRecord } from '../../core/kafka/log'

/** What processing a batch (or a tick) produced: output records and changelog updates. */
export interface StepResult {
  /** Records to commit. An output with an `fs-reason-code` header is counted as refused by
   * that reason (`FS_JOBS_LATE`: late), as the dead-letter and late helpers write them. */
  outputs: OutRecord[]
  /** Changelog entries of this partition's state: key → value, or null to delete the key.
   * Keys that start with NUL (`\u0000`) are the runtime's own. */
  changelog: Map<string, Buffer | null>
  /** Window results in `outputs`, by kind (for the firing metric). */
  firings?: Partial<Record<'final' | 'update' | 'retract', number>>
}

/**
 * A stream job: a pure step over the records of one input partition and that partition's
 * state. The runner owns Kafka: it restores state from the changelog, calls `process`, and
 * commits outputs, changelog entries and input offsets in one transaction.
 */
export interface StreamJob<S> {
  name: string
  inputTopics: string[]
  /** Inputs that are tables (a compacted registry): after each assignment, a partition's other
   * inputs wait until its table partitions are read to their current end, so a replay joins
   * with the whole table (like Kafka Streams bootstrapping a global table). */
  tableTopics?: string[]
  /** Topics the job writes (for creating them); the changelog is added by the runner. */
  outputTopics: string[]
  initState(): S
  /** Applies one changelog entry while restoring. */
  restore(state: S, key: string, value: Buffer): void
  process(state: S, records: InRecord[], now: number): Promise<StepResult> | StepResult
  /** Processing time passes with no input (idle advance of watermarks). */
  tick?(state: S, now: number): StepResult
  /** The partition's event-time watermark, for the watermark-lag metric (windowed jobs). */
  watermark?(state: S): number | undefined
  /** How many entries the state holds (open windows, registry entries), for the state-size metric. */
  stateSize?(state: S): number
}

/** Declares a stream job (STYLE: units are plain objects made by a define* helper). */
export function defineJob<S>(job: StreamJob<S>): StreamJob<S> {
  return job
}

/** A consumed record, refused by a job, as a dead-letter record: its bytes, why, and where it came from. */
export function deadLetterRecord(
  topic: string,
  job: string,
  r: InRecord,
  code: string,
  reason: string,
): OutRecord {
  return {
    topic,
    key: r.key,
    value: r.value,
    headers: {
      'fs-reason-code': code,
      'fs-reason': reason.slice(0, 1000),
      'fs-source': `job:${job}:${r.topic}/${r.partition}/${r.offset}`,
    },
  }
}
