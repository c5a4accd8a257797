import { EmbeddedEventLog } from '../core/embedded-log/log'
import { AvroCodec } from '../core/envelope/codec'
import { LocalSchemaRegistry } from '../core/envelope/registry'
import type { RuleDefinition } from '../schemas/types.generated'
import { testLogger } from '../test/kafka'
import { tempDir } from '../test/tmp'
import { RuleTable } from './table'

describe('rules > rule table', () => {
  it('refuses to follow a rules topic that does not exist, saying how to create it', async () => {
    const log = new EmbeddedEventLog({ dir: tempDir('fs-rule-table-'), logger: testLogger('rules') })
    try {
      const codec = await AvroCodec.bundled<RuleDefinition>(new LocalSchemaRegistry(), 'rule-definition.avsc')
      const table = new RuleTable(codec, testLogger('rules'))
      await expect(table.follow(log, 'nope.rules', 'g')).rejects.toThrow(
        /rules topic nope\.rules does not exist: create the topics first \(fleetstream topics create\)/,
      )
    } finally {
      await log.close()
    }
  })
})
