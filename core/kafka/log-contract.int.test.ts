import { eventLogContract } from '../../test/log-contract'
import { testKafkaLog } from '../../test/kafka'

// The contract's tests and their assertions live in test/log-contract.ts: one suite, run here on
// Kafka and in core/embedded-log/embedded-log.test.ts on the embedded log.
describe('core > event-log contract on Kafka [kafka]', () => {
  eventLogContract(() => testKafkaLog())
})
