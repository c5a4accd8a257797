import { AvroCodec } from '../core/envelope/codec'
import type { SchemaRegistry } from '../core/envelope/registry'
import type { EventLog } from '../core/kafka/log'
import type { Logger } from '../core/logging/logger'
import { RuleValidationError } from '../rules/errors'
import { parseRules } from '../rules/loader'
import { RuleTable } from '../rules/table'
import type { Alert, RuleDefinition } from '../schemas/types.generated'
import { ApiError, type RulesBackend } from './server'

/**
 * Rules for the API: read from the compacted rules topic (the same table the rules job keeps),
 * written by publishing to it — validated first with the loader the CLI uses, so the API can
 * publish nothing that `fleetstream rules validate` would refuse.
 */
export async function topicRules(o: {
  log: EventLog
  registry: SchemaRegistry
  topic: string
  groupId: string
  logger: Logger
}): Promise<RulesBackend & { close(): Promise<void> }> {
  const codec = await AvroCodec.bundled<RuleDefinition>(o.registry, 'rule-definition.avsc')
  const table = new RuleTable(codec, o.logger)
  const following = await table.follow(o.log, o.topic, o.groupId)
  const producer = await o.log.producer()
  return {
    list: () => table.list().map((c) => c.rule),
    async put(id, body) {
      let rule
      try {
        ;[rule] = parseRules(`api PUT /v1/rules/${id}`, [body])
      } catch (err) {
        if (err instanceof RuleValidationError)
          throw new ApiError(400, 'FS_API_BAD_RULE', err.message, err.problems)
        throw err
      }
      if (rule!.rule.id !== id)
        throw new ApiError(
          400,
          'FS_API_BAD_RULE',
          `the rule's id "${rule!.rule.id}" is not the id in the path "${id}"`,
        )
      await producer.send([
        {
          topic: o.topic,
          key: id,
          value: codec.encode({
            ruleId: id,
            definition: JSON.stringify(rule!.rule),
            publishedAt: Date.now(),
            source: 'api',
          }),
        },
      ])
      return rule!.rule
    },
    async remove(id) {
      if (!table.list().some((c) => c.rule.id === id)) return false
      await producer.send([{ topic: o.topic, key: id, value: null }])
      return true
    },
    close: async () => {
      await following.close()
      await producer.close()
    },
  }
}

/** Publishes alert events (the API's acknowledgements) to the alerts topic, keyed by device. */
export async function alertPublisher(
  log: EventLog,
  registry: SchemaRegistry,
  topic: string,
): Promise<(a: Alert) => Promise<void>> {
  const codec = await AvroCodec.bundled<Alert>(registry, 'alert.avsc')
  const producer = await log.producer()
  return async (a) => void (await producer.send([{ topic, key: a.deviceId, value: codec.encode(a) }]))
}
