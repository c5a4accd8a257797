import {
  Kafka,
  KafkaJSError,
  logLevel as KafkaLogLevel,
  PartitionAssigners,
  type Admin,
  type KafkaConfig as KafkaJsConfig,
  type KafkaMessage,
  type LogEntry,
  type Message,
  type Producer as KafkaJsProducer,
  type SASLOptions,
  type TopicMessages,
} from 'kafkajs'
import type { KafkaConfig } from '../config/schema'
import { coPartitionedAssigner } from './assigner'
import { LogError } from '../errors'
import type { Logger } from '../logging/logger'
import type {
  Consumer,
  ConsumerOptions,
  EventLog,
  GroupMember,
  InRecord,
  LogAdmin,
  OutRecord,
  PartitionOffset,
  Producer,
  RecordMeta,
  TopicSpec,
  Transaction,
  TransactionalProducer,
} from './log'
import { partitionForKey } from './murmur2'

/** How long a topic's partition count is trusted before it is fetched again. */
const METADATA_TTL_MS = 30_000

/** Wraps a kafkajs error in a LogError, keeping kafkajs's own idea of whether a retry helps. */
function logError(what: string, err: unknown): LogError {
  const retriable =
    typeof err === 'object' && err !== null && (err as { retriable?: unknown }).retriable === true
  const msg = err instanceof Error ? err.message : String(err)
  return new LogError(`${what}: ${msg}`, { retriable, cause: err })
}

/** kafkajs's text for CONCURRENT_TRANSACTIONS. */
const CONCURRENT_TX = /another concurrent operation on the same transaction/

/** Routes kafkajs's own log lines into winston at the matching level (expected transaction retries at debug). */
export function kafkaLogCreator(logger: Logger) {
  const log = logger.child({ component: 'core.kafka' })
  return () =>
    ({ level, log: entry }: LogEntry) => {
      const { message, ...fields } = entry
      // A transaction begun while the broker still writes the previous one's markers is
      // refused with CONCURRENT_TRANSACTIONS and retried (kafkajs logs that as an error); the
      // Java client does the same silently. Only the retries that keep failing matter.
      const expectedRetry = CONCURRENT_TX.test(`${String(message)} ${String(fields.error ?? '')}`)
      const lvl = expectedRetry
        ? 'debug'
        : level === KafkaLogLevel.ERROR
          ? 'error'
          : level === KafkaLogLevel.WARN
            ? 'warn'
            : level === KafkaLogLevel.INFO
              ? 'info'
              : 'debug'
      log.log(lvl, String(message), fields)
    }
}

/** kafkajs client settings from fleetstream's Kafka config (idempotent, loopback-friendly timeouts). */
export function kafkaJsConfig(cfg: KafkaConfig, logger: Logger): KafkaJsConfig {
  return {
    clientId: cfg.clientId,
    brokers: [...cfg.brokers],
    ssl: cfg.ssl,
    sasl: cfg.sasl ? ({ ...cfg.sasl } as SASLOptions) : undefined,
    connectionTimeout: cfg.connectionTimeoutMs,
    requestTimeout: cfg.requestTimeoutMs,
    logLevel: logger.isDebugEnabled() ? KafkaLogLevel.DEBUG : KafkaLogLevel.WARN,
    logCreator: kafkaLogCreator(logger),
    retry: { initialRetryTime: 100, retries: 8 },
  }
}

/** A kafkajs partitioner: an explicit partition if the message has one, else Java's murmur2 of the key (round-robin for null keys). */
export function murmur2Partitioner() {
  let next = 0
  return ({
    partitionMetadata,
    message,
  }: {
    partitionMetadata: { partitionId: number }[]
    message: Message
  }): number => {
    const n = partitionMetadata.length
    // kafkajs always asks the partitioner: an explicit partition must win (changelogs, planned sends).
    if (message.partition !== undefined && message.partition !== null) return message.partition
    if (message.key === null || message.key === undefined) return partitionMetadata[next++ % n]!.partitionId
    return partitionForKey(typeof message.key === 'string' ? message.key : new Uint8Array(message.key), n)
  }
}

function toMessage(r: OutRecord, partition: number | undefined): Message {
  return {
    key: r.key,
    value: r.value,
    partition,
    headers: r.headers,
    timestamp: r.timestamp === undefined ? undefined : String(r.timestamp),
  }
}

function headersOf(h: Record<string, unknown> | undefined): Record<string, Buffer> {
  const out: Record<string, Buffer> = {}
  if (!h) return out
  for (const [k, v] of Object.entries(h)) {
    const one = Array.isArray(v) ? v[v.length - 1] : v
    if (one === undefined || one === null) continue
    out[k] = Buffer.isBuffer(one) ? one : Buffer.from(String(one))
  }
  return out
}

/**
 * A consumed record over kafkajs's message: key, headers and timestamp are decoded on first
 * use (a sink that copies values straight into its store never needs them; per record they
 * cost more than the copy).
 */
class ConsumedRecord implements InRecord {
  private k?: string | null
  private h?: Record<string, Buffer>

  constructor(
    readonly topic: string,
    readonly partition: number,
    private readonly m: KafkaMessage,
  ) {}

  get offset(): string {
    return this.m.offset
  }

  get value(): Buffer | null {
    return this.m.value
  }

  get key(): string | null {
    if (this.k === undefined) this.k = this.m.key ? this.m.key.toString('utf8') : null
    return this.k
  }

  get headers(): Record<string, Buffer> {
    return (this.h ??= headersOf(this.m.headers as Record<string, unknown> | undefined))
  }

  get timestamp(): number {
    return Number(this.m.timestamp)
  }
}

/** Groups records by topic, choosing each keyed record's partition with murmur2 up front. */
class PartitionPlanner {
  private readonly counts = new Map<string, { n: number; at: number }>()

  constructor(private readonly admin: () => Promise<Admin>) {}

  async partitions(topic: string): Promise<number> {
    const hit = this.counts.get(topic)
    if (hit && Date.now() - hit.at < METADATA_TTL_MS) return hit.n
    const admin = await this.admin()
    const md = await admin.fetchTopicMetadata({ topics: [topic] })
    const n = md.topics[0]?.partitions.length ?? 0
    if (n < 1) throw new LogError(`topic ${topic} has no partitions (does it exist?)`, { retriable: true })
    this.counts.set(topic, { n, at: Date.now() })
    return n
  }

  forget(): void {
    this.counts.clear()
  }

  /** Assigns each record its partition and position, grouped into kafkajs topic messages. */
  async plan(records: OutRecord[]): Promise<{
    topicMessages: TopicMessages[]
    where: { topic: string; partition: number; index: number }[]
  }> {
    const byTopic = new Map<string, Message[]>()
    const perPartition = new Map<string, number>()
    const where: { topic: string; partition: number; index: number }[] = []
    for (const r of records) {
      const n = await this.partitions(r.topic)
      const partition =
        r.partition !== undefined
          ? r.partition
          : r.key === null
            ? Math.floor(Math.random() * n)
            : partitionForKey(r.key, n)
      if (partition < 0 || partition >= n)
        throw new LogError(`partition ${partition} does not exist in ${r.topic} (${n} partitions)`, {
          retriable: false,
        })
      const tp = `${r.topic}\u0000${partition}`
      const index = perPartition.get(tp) ?? 0
      perPartition.set(tp, index + 1)
      where.push({ topic: r.topic, partition, index })
      let list = byTopic.get(r.topic)
      if (!list) byTopic.set(r.topic, (list = []))
      list.push(toMessage(r, partition))
    }
    return { topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })), where }
  }
}

type SendBatch = (
  topicMessages: TopicMessages[],
) => Promise<{ topicName: string; partition: number; baseOffset?: string }[]>

/** Most record bytes sent in one produce request (half the broker's default message.max.bytes). */
const SEND_CHUNK_BYTES = 512 * 1024

/** A record's bytes on the wire, roughly (key, value, headers, per-record overhead). */
function recordSize(r: OutRecord): number {
  let n = 64 + (r.key?.length ?? 0) * 3 + (r.value?.length ?? 0)
  for (const [k, v] of Object.entries(r.headers ?? {})) n += k.length + (v?.length ?? 0) + 8
  return n
}

/**
 * The event log on Apache Kafka through kafkajs. Producers are idempotent with acks=all, so
 * `send` resolving means every in-sync replica has the records.
 */
export class KafkaEventLog implements EventLog {
  readonly kafka: Kafka
  private sharedAdmin: Promise<Admin> | undefined
  private readonly planner: PartitionPlanner
  private readonly logger: Logger

  constructor(
    private readonly cfg: KafkaConfig,
    logger: Logger,
  ) {
    this.logger = logger.child({ component: 'core.kafka' })
    this.kafka = new Kafka(kafkaJsConfig(cfg, logger))
    this.planner = new PartitionPlanner(() => this.metadataAdmin())
  }

  private metadataAdmin(): Promise<Admin> {
    if (!this.sharedAdmin) {
      const admin = this.kafka.admin()
      this.sharedAdmin = admin.connect().then(
        () => admin,
        (err: unknown) => {
          this.sharedAdmin = undefined
          throw logError('cannot connect to Kafka', err)
        },
      )
    }
    return this.sharedAdmin
  }

  private newProducer(transactionalId?: string): KafkaJsProducer {
    return this.kafka.producer({
      idempotent: true,
      // kafkajs keeps per-partition order with idempotence only at one request in flight.
      maxInFlightRequests: 1,
      transactionalId,
      allowAutoTopicCreation: false,
      createPartitioner: murmur2Partitioner,
      // An idempotent producer retries until the write is durable: giving up part-way can
      // leave sequence numbers out of step (kafkajs warns). Bounding the wait is the caller's
      // job (bridge pushback, job timeouts), not the producer's. First retry after ~20 ms, as
      // the Java producer waits on CONCURRENT_TRANSACTIONS (a transaction begun while the
      // previous one's markers are still being written), the common case in a busy job; at
      // 100 ms each such retry held a rules-job batch ~100 ms (its transaction timings).
      retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 20, maxRetryTime: 5_000 },
    })
  }

  /**
   * Sends records in requests of at most SEND_CHUNK_BYTES, one after the other: kafkajs puts
   * all of one call's records for a partition into one record batch, and the broker refuses a
   * batch over its message.max.bytes (1 MiB by default), which a big job step (thousands of
   * changelog entries) exceeds. Order holds: one request in flight.
   */
  private async sendPlanned(send: SendBatch, records: OutRecord[]): Promise<RecordMeta[]> {
    const metas: RecordMeta[] = []
    let chunk: OutRecord[] = []
    let bytes = 0
    for (const r of records) {
      const size = recordSize(r)
      if (chunk.length > 0 && bytes + size > SEND_CHUNK_BYTES) {
        metas.push(...(await this.sendChunk(send, chunk)))
        chunk = []
        bytes = 0
      }
      chunk.push(r)
      bytes += size
    }
    if (chunk.length) metas.push(...(await this.sendChunk(send, chunk)))
    return metas
  }

  private async sendChunk(send: SendBatch, records: OutRecord[]): Promise<RecordMeta[]> {
    const { topicMessages, where } = await this.planner.plan(records)
    let results
    try {
      results = await send(topicMessages)
    } catch (err) {
      this.planner.forget()
      throw logError('produce failed', err)
    }
    const base = new Map(
      results.map((m) => [`${m.topicName}\u0000${m.partition}`, BigInt(m.baseOffset ?? '0')]),
    )
    return where.map((w) => ({
      topic: w.topic,
      partition: w.partition,
      offset: ((base.get(`${w.topic}\u0000${w.partition}`) ?? 0n) + BigInt(w.index)).toString(),
    }))
  }

  async producer(): Promise<Producer> {
    const p = this.newProducer()
    try {
      await p.connect()
    } catch (err) {
      throw logError('cannot connect producer to Kafka', err)
    }
    return {
      send: (records) =>
        this.sendPlanned((topicMessages) => p.sendBatch({ topicMessages, acks: -1 }), records),
      close: () => p.disconnect(),
    }
  }

  async transactionalProducer(transactionalId: string): Promise<TransactionalProducer> {
    const connect = async () => {
      const p = this.newProducer(transactionalId)
      try {
        await p.connect()
      } catch (err) {
        throw logError('cannot connect transactional producer to Kafka', err)
      }
      return p
    }
    let p = await connect()
    /**
     * kafkajs leaves a transaction whose EndTxn failed in its COMMITTING (or ABORTING) state for
     * good and refuses every later one, so a commit that met a broker restart stopped the job.
     * After such a failure on a retriable error, the next `begin` starts a new kafkajs producer
     * with the same transactional id: its InitProducerId has the coordinator finish the old
     * transaction (a commit whose answer was lost is then committed; the runner's positions in
     * the changelog skip its records). Not after fencing (a newer instance has the id: this
     * one must stop, not fence it back).
     */
    let stale = false
    const ended = (what: string) => (err: unknown) => {
      const e = logError(what, err)
      if (e.retriable) stale = true
      throw e
    }
    return {
      begin: async (): Promise<Transaction> => {
        if (stale) {
          const old = p
          p = await connect()
          stale = false
          await old.disconnect().catch(() => undefined)
        }
        const tx = await p.transaction().catch((err: unknown) => {
          throw logError('cannot begin transaction', err)
        })
        return {
          send: async (records) => {
            await this.sendPlanned((topicMessages) => tx.sendBatch({ topicMessages, acks: -1 }), records)
          },
          sendOffsets: async (groupId: string, offsets: PartitionOffset[], member?: GroupMember) => {
            const byTopic = new Map<string, { partition: number; offset: string }[]>()
            for (const o of offsets) {
              let list = byTopic.get(o.topic)
              if (!list) byTopic.set(o.topic, (list = []))
              list.push({ partition: o.partition, offset: o.offset })
            }
            await tx
              .sendOffsets({
                consumerGroupId: groupId,
                topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })),
                // TxnOffsetCommit v3 (patches/kafkajs+2.2.4.patch): the group checks them.
                ...member,
              } as Parameters<typeof tx.sendOffsets>[0])
              .catch((err: unknown) => {
                throw logError('cannot add offsets to transaction', err)
              })
          },
          commit: () => tx.commit().catch(ended('transaction commit failed')),
          abort: () => tx.abort().catch(ended('transaction abort failed')),
        }
      },
      close: () => p.disconnect(),
    }
  }

  async consumer(opts: ConsumerOptions): Promise<Consumer> {
    const c = this.kafka.consumer({
      groupId: opts.groupId,
      readUncommitted: opts.readCommitted === false,
      allowAutoTopicCreation: false,
      sessionTimeout: this.cfg.sessionTimeoutMs,
      heartbeatInterval: Math.min(3_000, Math.floor(this.cfg.sessionTimeoutMs / 3)),
      // Partition p of every topic to one member: jobs join co-partitioned topics.
      partitionAssigners: [coPartitionedAssigner, PartitionAssigners.roundRobin],
    })
    try {
      await c.connect()
      await c.subscribe({ topics: opts.topics, fromBeginning: opts.fromBeginning ?? false })
    } catch (err) {
      await c.disconnect().catch(() => undefined)
      throw logError(`cannot subscribe group ${opts.groupId}`, err)
    }
    let assigned = new Map<string, number[]>()
    let member: GroupMember | undefined
    c.on(c.events.GROUP_JOIN, ({ payload }) => {
      assigned = new Map(Object.entries(payload.memberAssignment))
      // A new member id: the coordinator had dropped this member (session timeout) and kafkajs
      // joined afresh; generations may have passed without it.
      const rejoined = member !== undefined && payload.memberId !== member.memberId
      // generationId: added to the event by patches/kafkajs+2.2.4.patch.
      const { generationId } = payload as typeof payload & { generationId: number }
      member = { generationId, memberId: payload.memberId }
      // kafkajs calls listeners synchronously when it emits, before its first fetch.
      opts.onAssign?.(assigned, rejoined)
    })
    c.on(c.events.CRASH, ({ payload }) => {
      // kafkajs restarts the consumer itself after retriable errors; otherwise it has stopped.
      if (!payload.restart) opts.onFatal?.(payload.error)
    })
    const commit = async (offsets: PartitionOffset[]): Promise<void> => {
      if (offsets.length === 0) return
      await c.commitOffsets(offsets.map((o) => ({ ...o }))).catch((err: unknown) => {
        throw logError(`commit failed for group ${opts.groupId}`, err)
      })
    }
    return {
      run: async (handler) => {
        await c.run({
          autoCommit: false,
          partitionsConsumedConcurrently: opts.concurrency ?? 1,
          eachBatchAutoResolve: true,
          eachBatch: async ({ batch, heartbeat }) => {
            const records: InRecord[] = batch.messages.map(
              (m) => new ConsumedRecord(batch.topic, batch.partition, m),
            )
            if (records.length === 0) return
            try {
              await handler(
                { topic: batch.topic, partition: batch.partition, records },
                { commit, heartbeat },
              )
            } catch (err) {
              // kafkajs stops a consumer for good on an error it does not know as retriable; a
              // handler's failure (a produce, a lookup) is worth retrying: the batch comes again
              // (its offsets were not resolved), then the consumer restarts after its retries.
              throw err instanceof KafkaJSError ? err : new KafkaJSError(err as Error, { retriable: true })
            }
          },
        })
      },
      commit,
      assignment: () => assigned,
      member: () => member,
      pause: (topic, partitions) => c.pause([{ topic, partitions }]),
      resume: (topic, partitions) => c.resume([{ topic, partitions }]),
      close: () => c.disconnect(),
    }
  }

  /**
   * A topic's end offsets, from an admin client of its own. kafkajs's fetchTopicOffsets
   * can fail with a TypeError ("Cannot destructure property 'partitions' of 'low.pop(...)'")
   * while a just-created topic's leaders are missing from its cached metadata; a fresh client
   * and a short backoff clear it. (Found as a stream job that stopped reading in CI.)
   */
  private async endOffsets(topic: string): Promise<Map<number, bigint>> {
    for (let attempt = 1; ; attempt++) {
      const admin = this.kafka.admin()
      try {
        await admin.connect()
        const offsets = await admin.fetchTopicOffsets(topic)
        return new Map(offsets.map((o) => [o.partition, BigInt(o.high)]))
      } catch (err) {
        if (attempt >= 8) throw logError(`cannot read the end offsets of ${topic}`, err)
        this.logger.warn('end offset lookup failed; retrying', {
          topic,
          attempt,
          error: (err as Error).message,
        })
        await new Promise((r) => setTimeout(r, 100 * attempt))
      } finally {
        await admin.disconnect().catch(() => undefined)
      }
    }
  }

  /** Reads the whole topic and keeps `partition`'s records (kafkajs has no manual assignment):
   * fine for compacted changelogs, costly for large topics. */
  async readPartition(topic: string, partition: number, onRecord: (r: InRecord) => void): Promise<void> {
    const end = (await this.endOffsets(topic)).get(partition) ?? 0n
    if (end === 0n) return
    await this.readTo(topic, new Map([[partition, end]]), onRecord)
  }

  async readTopic(topic: string, onRecord: (r: InRecord) => void): Promise<void> {
    const admin = await this.metadataAdmin()
    const ends = new Map<number, bigint>()
    for (const o of await admin.fetchTopicOffsets(topic))
      if (BigInt(o.high) > 0n) ends.set(o.partition, BigInt(o.high))
    if (ends.size) await this.readTo(topic, ends, onRecord)
  }

  /**
   * Reads partitions of `topic` from their start up to the given end offsets with a throwaway
   * consumer group (kafkajs has no manual assignment). The stop is taken from kafkajs's
   * END_BATCH_PROCESS event, which also reports batches holding only transaction markers (a
   * committed changelog usually ends with one).
   */
  private async readTo(
    topic: string,
    ends: Map<number, bigint>,
    onRecord: (r: InRecord) => void,
  ): Promise<void> {
    const c = this.kafka.consumer({
      groupId: `fleetstream-read-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`,
      allowAutoTopicCreation: false,
    })
    const waiting = new Set(ends.keys())
    try {
      await c.connect()
      await c.subscribe({ topics: [topic], fromBeginning: true })
      await new Promise<void>((resolve, reject) => {
        c.on(c.events.END_BATCH_PROCESS, ({ payload }) => {
          const end = ends.get(payload.partition)
          if (end !== undefined && BigInt(payload.lastOffset) + 1n >= end) waiting.delete(payload.partition)
          if (waiting.size === 0) resolve()
        })
        c.on(c.events.CRASH, ({ payload }) => reject(payload.error))
        c.run({
          autoCommit: false,
          eachBatch: async ({ batch }) => {
            const end = ends.get(batch.partition)
            if (end === undefined) return
            for (const m of batch.messages) {
              if (BigInt(m.offset) >= end) break
              onRecord({
                topic,
                partition: batch.partition,
                offset: m.offset,
                key: m.key === null ? null : m.key.toString('utf8'),
                value: m.value,
                headers: headersOf(m.headers as Record<string, unknown> | undefined),
                timestamp: Number(m.timestamp),
              })
            }
          },
        }).catch(reject)
      })
    } catch (err) {
      throw logError(`cannot read topic ${topic}`, err)
    } finally {
      await c.disconnect().catch(() => undefined)
    }
  }

  async admin(): Promise<LogAdmin> {
    const a = this.kafka.admin()
    try {
      await a.connect()
    } catch (err) {
      throw logError('cannot connect admin to Kafka', err)
    }
    const log = this.logger
    return {
      ensureTopics: async (specs: TopicSpec[]) => {
        const existing = new Set(await a.listTopics())
        const missing = specs.filter((s) => !existing.has(s.name))
        if (missing.length === 0) return []
        await a
          .createTopics({
            waitForLeaders: true,
            topics: missing.map((s) => ({
              topic: s.name,
              numPartitions: s.partitions,
              replicationFactor: s.replicationFactor,
              configEntries: Object.entries({
                ...(s.compacted ? { 'cleanup.policy': 'compact' } : {}),
                ...s.config,
              }).map(([name, value]) => ({ name, value })),
            })),
          })
          .catch((err: unknown) => {
            throw logError('cannot create topics', err)
          })
        log.info('topics created', { topics: missing.map((s) => s.name) })
        return missing.map((s) => s.name)
      },
      listTopics: () => a.listTopics(),
      partitionCount: async (topic) => {
        const md = await a.fetchTopicMetadata({ topics: [topic] })
        return md.topics[0]?.partitions.length ?? 0
      },
      deleteTopics: (names) => a.deleteTopics({ topics: names }),
      // On this admin's connection first (the runner's gauges ask every few seconds); when
      // that fails, fresh clients with retries: right after createTopics a broker can still
      // answer ListOffsets with NOT_LEADER for a new partition (seen on a fresh KRaft broker:
      // `up --kafka` failed to start), and kafkajs's cached metadata can lack its leaders.
      endOffsets: (topic) =>
        a.fetchTopicOffsets(topic).then(
          (os) => new Map(os.map((o) => [o.partition, o.high])),
          async () => new Map([...(await this.endOffsets(topic))].map(([p, high]) => [p, high.toString()])),
        ),
      committedOffsets: async (groupId, topic) => {
        const [t] = await a.fetchOffsets({ groupId, topics: [topic] })
        return new Map((t?.partitions ?? []).map((p) => [p.partition, p.offset]))
      },
      close: () => a.disconnect(),
    }
  }

  /** Releases the shared metadata connection. Producers and consumers are closed by their owners. */
  async close(): Promise<void> {
    const admin = this.sharedAdmin
    this.sharedAdmin = undefined
    if (admin) await (await admin.catch(() => undefined))?.disconnect()
  }
}
