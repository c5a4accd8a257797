import type { Consumer, EventLog, InRecord } from '../core/kafka/log'
import { KafkaEventLog } from '../core/kafka/kafkajs-log'
import { kafkaConfig } from '../core/config/schema'
import { createLogger } from '../core/logging/logger'
import winston from 'winston'
import { serverEnv } from './servers'

/** Where tests' own logs go (not the console): test-artifacts/<name>.log. */
export function testLogger(name: string) {
  return createLogger({
    level: 'info',
    transports: [new winston.transports.File({ filename: `${__dirname}/../test-artifacts/${name}.log` })],
  })
}

/** Resolves when `promise` does or after `ms`, whichever is first, leaving no timer behind. */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<undefined>((r) => {
        timer = setTimeout(() => r(undefined), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

/** An event log on the real test broker, logging warnings only. */
export function testKafkaLog(): KafkaEventLog {
  const cfg = kafkaConfig.parse({ brokers: serverEnv().FS_KAFKA_BROKERS, clientId: 'fleetstream-test' })
  return new KafkaEventLog(cfg, testLogger('kafka'))
}

/**
 * Consumes with a fresh consumer until `done(records)` is true or `timeoutMs` passes; returns
 * what arrived, in arrival order. Closes the consumer.
 */
export async function collect(
  log: EventLog,
  opts: { groupId: string; topics: string[]; readCommitted?: boolean },
  done: (records: InRecord[]) => boolean,
  timeoutMs = 60_000,
): Promise<InRecord[]> {
  const records: InRecord[] = []
  const consumer: Consumer = await log.consumer({ ...opts, fromBeginning: true })
  let finish!: () => void
  const finished = new Promise<void>((r) => (finish = r))
  await consumer.run(async (batch) => {
    records.push(...batch.records)
    if (done(records)) finish()
  })
  await within(finished, timeoutMs)
  await consumer.close()
  return records
}
