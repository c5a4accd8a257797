import type { OutRecord, Producer, RecordMeta } from '../core/kafka/log'

/**
 * An in-memory implementation of core's Producer interface for unit tests of code above it
 * (no Kafka client is involved or imitated). Sends can be held to simulate a slow log.
 */
export class RecordingProducer implements Producer {
  readonly batches: OutRecord[][] = []
  private offset = 0
  private gate: Promise<void> | undefined
  private openGate: (() => void) | undefined
  failWith: Error | undefined

  get records(): OutRecord[] {
    return this.batches.flat()
  }

  /** Holds every send until `release()`. */
  hold(): void {
    this.gate = new Promise((r) => (this.openGate = r))
  }

  release(): void {
    this.openGate?.()
    this.gate = undefined
  }

  async send(records: OutRecord[]): Promise<RecordMeta[]> {
    if (this.gate) await this.gate
    if (this.failWith) throw this.failWith
    this.batches.push(records)
    return records.map((r) => ({ topic: r.topic, partition: 0, offset: String(this.offset++) }))
  }

  async close(): Promise<void> {}
}
