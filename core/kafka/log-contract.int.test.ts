import { eventLogContract } from '../../test/log-contract'
import { testKafkaLog } from '../../test/kafka'

describe('core > event-log contract on Kafka [kafka]', () => {
  eventLogContract(() => testKafkaLog())
})
