/** Kafka helpers shared by the benchmarks (admin calls on the test broker). */
import { Kafka, logLevel } from 'kafkajs'
import { serverEnv } from '../../test/servers'

/** A kafkajs client of the test broker, silent. */
export function benchKafka(clientId: string): Kafka {
  return new Kafka({ clientId, brokers: serverEnv().FS_KAFKA_BROKERS.split(','), logLevel: logLevel.NOTHING })
}

/** Sum of a group's committed offsets on a topic (0 while nothing is committed). */
export async function committedSum(kafka: Kafka, groupId: string, topic: string): Promise<number> {
  const admin = kafka.admin()
  await admin.connect()
  try {
    const [t] = await admin.fetchOffsets({ groupId, topics: [topic] })
    return (t?.partitions ?? []).reduce((a, p) => a + Math.max(0, Number(p.offset)), 0)
  } finally {
    await admin.disconnect()
  }
}

/** Creates topics with `partitions` partitions (compacted when asked), waiting for leaders. */
export async function createBenchTopics(
  kafka: Kafka,
  partitions: number,
  topics: { name: string; compacted?: boolean }[],
): Promise<void> {
  const admin = kafka.admin()
  await admin.connect()
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: topics.map((t) => ({
        topic: t.name,
        numPartitions: partitions,
        replicationFactor: 1,
        configEntries: t.compacted ? [{ name: 'cleanup.policy', value: 'compact' }] : [],
      })),
    })
  } finally {
    await admin.disconnect()
  }
}

/**
 * Resolves when `groupId` is Stable with members (its partitions assigned: the consumers
 * fetch from here on), polling every 10 ms. A benchmark's clock starts here, so that no work
 * happens before it (timing from the first committed offset would leave the first batches out).
 */
export async function groupStable(kafka: Kafka, groupId: string, timeoutMs = 60_000): Promise<void> {
  const admin = kafka.admin()
  await admin.connect()
  try {
    const end = Date.now() + timeoutMs
    for (;;) {
      const { groups } = await admin.describeGroups([groupId])
      const g = groups[0]
      if (g && g.state === 'Stable' && g.members.length > 0) return
      if (Date.now() > end) throw new Error(`group ${groupId} not stable after ${timeoutMs} ms`)
      await new Promise((r) => setTimeout(r, 10))
    }
  } finally {
    await admin.disconnect()
  }
}
