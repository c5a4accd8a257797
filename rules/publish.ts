import type { AvroCodec } from '../core/envelope/codec'
import type { EventLog } from '../core/kafka/log'
import type { RuleDefinition } from '../schemas/types.generated'
import type { CompiledRule } from './engine'

/** Publishes validated rules to the compacted rules topic (keyed by rule id); running jobs pick them up. */
export async function publishRules(
  log: EventLog,
  o: { codec: AvroCodec<RuleDefinition>; topic: string; rules: CompiledRule[]; source: string },
): Promise<void> {
  const producer = await log.producer()
  try {
    await producer.send(
      o.rules.map(({ rule }) => ({
        topic: o.topic,
        key: rule.id,
        value: o.codec.encode({
          ruleId: rule.id,
          definition: JSON.stringify(rule),
          publishedAt: Date.now(),
          source: o.source,
        }),
      })),
    )
  } finally {
    await producer.close()
  }
}
