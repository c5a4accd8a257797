import { logLevel } from 'kafkajs'
import { createLogger } from '../logging/logger'
import { kafkaLogCreator } from './kafkajs-log'
import { LogCapture } from '../../test/log-capture'

describe('core > kafka > kafkajs log entries', () => {
  it('keeps kafkajs levels, but an expected CONCURRENT_TRANSACTIONS retry is debug, not an error', () => {
    const cap = new LogCapture()
    const log = kafkaLogCreator(createLogger({ level: 'debug', transports: [cap] }))()
    const entry = (level: logLevel, message: string, error?: string) =>
      log({ namespace: 'x', level, label: 'ERROR', log: { message, error, timestamp: '' } })
    entry(
      logLevel.ERROR,
      'Response AddPartitionsToTxn(key: 24, version: 1)',
      'The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing',
    )
    entry(
      logLevel.ERROR,
      'Failed to send messages: The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing',
    )
    entry(logLevel.ERROR, 'Failed to send messages: This server is not the leader for that topic-partition')
    entry(logLevel.WARN, 'group rebalancing')
    expect(cap.lines.map((l) => [l.level, l.component])).toEqual([
      ['debug', 'core.kafka'],
      ['debug', 'core.kafka'],
      ['error', 'core.kafka'],
      ['warn', 'core.kafka'],
    ])
  })
})
