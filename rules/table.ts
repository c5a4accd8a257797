import type { AvroCodec } from '../core/envelope/codec'
import type { EventLog } from '../core/kafka/log'
import type { Logger } from '../core/logging/logger'
import type { RuleDefinition } from '../schemas/types.generated'
import type { CompiledRule } from './engine'
import { RuleValidationError } from './errors'
import { parseRules } from './loader'
import type { RuleMetrics } from './metrics'

/** Where a rules job gets the rules in force. */
export interface RuleSource {
  list(): CompiledRule[]
}

/**
 * The rules in force, kept from the compacted `iot.rules` topic: every instance of the rules
 * job reads all of it (like a Kafka Streams global table) and applies changes while running. A
 * definition that does not validate is refused, logged and counted; the rule's previous
 * version stays in force.
 */
export class RuleTable implements RuleSource {
  private readonly rules = new Map<string, CompiledRule>()
  private cached: CompiledRule[] = []

  constructor(
    private readonly codec: AvroCodec<RuleDefinition>,
    private readonly logger: Logger,
    private readonly metrics?: RuleMetrics,
  ) {}

  /** The rules in force, ordered by id. */
  list(): CompiledRule[] {
    return this.cached
  }

  /** Applies one record of the rules topic (a tombstone removes the rule). */
  async apply(
    key: string | null,
    value: Buffer | null,
  ): Promise<'updated' | 'removed' | 'invalid' | 'ignored'> {
    if (key === null) return 'ignored'
    if (value === null) {
      if (!this.rules.delete(key)) return 'ignored'
      this.changed()
      this.logger.info('rule removed', { rule: key })
      return 'removed'
    }
    let compiled: CompiledRule
    try {
      const def = await this.codec.decode(value)
      const [rule] = parseRules(`${def.source ?? 'iot.rules'} (published)`, [
        JSON.parse(def.definition) as unknown,
      ])
      if (rule!.rule.id !== key) throw new Error(`rule id ${rule!.rule.id} does not match its key ${key}`)
      compiled = rule!
    } catch (err) {
      this.metrics?.invalid.inc()
      this.logger.error('rule definition refused; the previous version stays in force', {
        rule: key,
        error: err instanceof RuleValidationError ? err.problems : (err as Error).message,
      })
      return 'invalid'
    }
    this.rules.set(key, compiled)
    this.changed()
    this.logger.info('rule in force', { rule: key, kind: compiled.rule.kind })
    return 'updated'
  }

  private changed(): void {
    this.cached = [...this.rules.values()].sort((a, b) => (a.rule.id < b.rule.id ? -1 : 1))
    this.metrics?.loaded.set(this.cached.length)
  }

  /**
   * Reads the topic from the start with a consumer group of its own (every instance sees every
   * partition) and keeps following it. Resolves once it has read up to the end offsets found on
   * entry, so a job never judges readings with a partial rule set.
   */
  async follow(
    log: EventLog,
    topic: string,
    groupId: string,
    timeoutMs = 60_000,
  ): Promise<{ close(): Promise<void> }> {
    const admin = await log.admin()
    let ends: Map<number, string>
    try {
      ends = await admin.endOffsets(topic)
    } finally {
      await admin.close()
    }
    const behind = new Map(
      [...ends].filter(([, end]) => BigInt(end) > 0n).map(([p, end]) => [p, BigInt(end)]),
    )
    let caughtUp!: () => void
    const ready = new Promise<void>((r) => (caughtUp = r))
    if (behind.size === 0) caughtUp()
    const consumer = await log.consumer({
      groupId,
      topics: [topic],
      fromBeginning: true,
      readCommitted: true,
    })
    await consumer.run(async (batch) => {
      for (const r of batch.records) await this.apply(r.key, r.value)
      const next = BigInt(batch.records[batch.records.length - 1]!.offset) + 1n
      const end = behind.get(batch.partition)
      if (end !== undefined && next >= end) {
        behind.delete(batch.partition)
        if (behind.size === 0) caughtUp()
      }
    })
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`rules topic ${topic} not read to its end within ${timeoutMs} ms`)),
        timeoutMs,
      )
    })
    try {
      await Promise.race([ready, timedOut])
    } catch (err) {
      await consumer.close()
      throw err
    } finally {
      clearTimeout(timer)
    }
    this.logger.info('rules loaded', { topic, rules: this.cached.length })
    return { close: () => consumer.close() }
  }
}
