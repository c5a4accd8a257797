import type { EventLog, InRecord, PartitionOffset } from '../core/kafka/log'
import { KafkaEventLog } from '../core/kafka/kafkajs-log'
import type { Logger } from '../core/logging/logger'
import type { BridgeRoleConfig } from './config'
import { createIngestCore } from './index'
import { DLQ_HEADERS } from './ingest/pipeline'

/** What a replay did. */
export interface ReplayReport {
  read: number
  /** Records fed back through the pipeline. */
  replayed: number
  /** Readings that are now in the raw topic. */
  accepted: number
  /** Records that were refused again (and are in the dead-letter topic again, with today's reason). */
  refusedAgain: number
  /** Records that cannot be replayed: refused before a device or payload was known (e.g. oversized). */
  skipped: number
}

/**
 * Re-ingests the dead-letter topic through the same pipeline, after a fix (a new topic
 * template, a wider timestamp skew, a schema registered…). Each record goes in as it first
 * arrived: its device, source, topic and receive time come from its headers, so checks such as
 * clock skew judge it against when it was received. Progress is committed in a consumer group,
 * so a second run replays only records added since; it stops at the end offsets it found when
 * it started, so records it refuses again are not replayed in a loop.
 */
export async function replayDeadLetters(
  cfg: BridgeRoleConfig,
  logger: Logger,
  opts: { groupId?: string; log?: EventLog } = {},
): Promise<ReplayReport> {
  const log = opts.log ?? new KafkaEventLog(cfg.kafka, logger)
  // One device's backlog is replayed at once: the per-device rate limit is for live traffic.
  const replayCfg = { ...cfg, bridge: { ...cfg.bridge, limits: { ...cfg.bridge.limits, ratePerDevice: 0 } } }
  const core = await createIngestCore(replayCfg, logger, { log })
  const report: ReplayReport = { read: 0, replayed: 0, accepted: 0, refusedAgain: 0, skipped: 0 }
  const topic = cfg.topics.deadletter
  const admin = await log.admin()
  const ends = await admin.endOffsets(topic)
  await admin.close()
  const remaining = new Set([...ends].filter(([, end]) => end !== '0').map(([p]) => p))
  const consumer = await log.consumer({
    groupId: opts.groupId ?? 'fleetstream-deadletter-replay',
    topics: [topic],
    fromBeginning: true,
  })
  const rlog = logger.child({ component: 'bridge.replay' })
  try {
    let finish!: () => void
    const finished = new Promise<void>((r) => (finish = r))
    const commits: PartitionOffset[] = []
    if (remaining.size === 0) finish()
    await consumer.run(async (batch, ctx) => {
      const end = BigInt(ends.get(batch.partition) ?? '0')
      let next: bigint | undefined
      for (const r of batch.records) {
        if (BigInt(r.offset) >= end) break
        await replayOne(r)
        next = BigInt(r.offset) + 1n
      }
      if (next !== undefined) {
        const c = { topic, partition: batch.partition, offset: next.toString() }
        await ctx.commit([c])
        commits.push(c)
        if (next >= end) remaining.delete(batch.partition)
      } else if (BigInt(batch.records[0]?.offset ?? '0') >= end) {
        remaining.delete(batch.partition)
      }
      if (remaining.size === 0) finish()
    })
    await finished
    rlog.info('dead-letter replay done', { ...report, partitions: commits.length })
    return report
  } finally {
    await consumer.close()
    await core.close()
    if (!opts.log) await log.close()
  }

  async function replayOne(r: InRecord): Promise<void> {
    report.read++
    const header = (k: string) => r.headers[k]?.toString()
    const deviceId = header(DLQ_HEADERS.device)
    const source = header(DLQ_HEADERS.source)
    if (!deviceId || deviceId === 'unknown' || (source !== 'mqtt' && source !== 'http') || !r.value?.length) {
      report.skipped++
      return
    }
    const topicHeader = header(DLQ_HEADERS.topic)
    const outcome = await core.pipeline.ingest({
      source,
      deviceId,
      tenant: null,
      // An HTTP record's topic header holds its URL; only MQTT topics are matched against templates.
      topic: source === 'mqtt' && topicHeader ? topicHeader : null,
      payload: r.value,
      receivedAt: Number(header(DLQ_HEADERS.receivedAt) ?? Date.now()),
    })
    report.replayed++
    report.accepted += outcome.accepted
    if (outcome.rejected.length > 0) report.refusedAgain++
  }
}
