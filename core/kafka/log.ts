/**
 * The narrow interface through which every role reaches the event log. Kafka (kafkajs) is the
 * reference implementation; the embedded single-process mode provides an in-process log
 * behind the same interface, so role code never imports a Kafka client.
 */

/** Record headers as a role writes them. */
export type OutHeaders = Record<string, string | Buffer>

/** A record to produce. `key` is the device id for telemetry: it picks the partition (murmur2). */
export interface OutRecord {
  topic: string
  key: string | null
  value: Buffer | null
  headers?: OutHeaders
  /** Event time in ms; the log's append time when omitted. */
  timestamp?: number
  /** An explicit partition (changelogs follow their input partition); otherwise murmur2 of the key. */
  partition?: number
}

/** Where a produced record was written. */
export interface RecordMeta {
  topic: string
  partition: number
  /** Offset as a decimal string (Kafka offsets are 64-bit). */
  offset: string
}

/** A consumed record. */
export interface InRecord {
  topic: string
  partition: number
  offset: string
  key: string | null
  value: Buffer | null
  headers: Record<string, Buffer>
  timestamp: number
}

/** A consumer group position: `offset` is the next offset to read, as Kafka commits it. */
export interface PartitionOffset {
  topic: string
  partition: number
  offset: string
}

/** Records of one partition, in offset order. */
export interface RecordBatch {
  topic: string
  partition: number
  records: InRecord[]
}

/** Writes records; `send` resolves only when every record is durable (acks=all). */
export interface Producer {
  send(records: OutRecord[]): Promise<RecordMeta[]>
  close(): Promise<void>
}

/** A consumer's membership of its group at one generation (what Kafka's KIP-447 fencing checks). */
export interface GroupMember {
  generationId: number
  memberId: string
}

/** One open transaction: records and consumer offsets become visible together, or not at all. */
export interface Transaction {
  send(records: OutRecord[]): Promise<void>
  /** Commits consumer-group offsets as part of this transaction (consume→process→produce).
   * With `member` (the membership the records were consumed under), the group refuses the
   * offsets — and the transaction fails — once it has moved on to a newer generation: an
   * instance that lost its partitions (paused past its session timeout) cannot commit for them. */
  sendOffsets(groupId: string, offsets: PartitionOffset[], member?: GroupMember): Promise<void>
  commit(): Promise<void>
  abort(): Promise<void>
}

/** A producer whose writes happen in transactions; one `transactionalId` per producing instance. */
export interface TransactionalProducer {
  begin(): Promise<Transaction>
  close(): Promise<void>
}

/** Options of a consumer in a group. */
export interface ConsumerOptions {
  groupId: string
  topics: string[]
  /** Where a group with no committed offset starts. Default: latest. */
  fromBeginning?: boolean
  /** Read only committed transactional records (Kafka's read_committed). Default: true. */
  readCommitted?: boolean
  /** The consumer stopped for good (an error retries could not clear): the owner must fail
   * loudly (exit, so a supervisor restarts it) rather than sit idle. */
  onFatal?: (err: Error) => void
  /** How many partitions' batches may be handed to the handler at once (default 1). */
  concurrency?: number
  /** Called, before fetching starts, each time the group hands this member its partitions.
   * `rejoined`: this member joined again under a new identity (it had been dropped from the
   * group), so it may have missed assignments in between: whatever it kept about any
   * partition may be out of date. */
  onAssign?: (assignment: Map<string, number[]>, rejoined: boolean) => void
}

/** What a batch handler may do besides processing: commit positions, keep its session alive. */
export interface BatchContext {
  commit(offsets: PartitionOffset[]): Promise<void>
  heartbeat(): Promise<void>
}

/** A consumer in a group with manual commits: nothing is committed unless the handler says so. */
export interface Consumer {
  /** Starts consuming; resolves once the consumer is running. Batches of one partition are
   * sequential; batches of different partitions may overlap up to `concurrency`. */
  run(handler: (batch: RecordBatch, ctx: BatchContext) => Promise<void>): Promise<void>
  commit(offsets: PartitionOffset[]): Promise<void>
  /** Partitions currently assigned to this member, by topic (empty before the first join). */
  assignment(): Map<string, number[]>
  /** This member's current membership (undefined before the first join, or where the log has
   * no group generations to fence with). */
  member(): GroupMember | undefined
  /** Stops fetching these partitions until `resume` (records already handed over still come). */
  pause(topic: string, partitions: number[]): void
  resume(topic: string, partitions: number[]): void
  close(): Promise<void>
}

/** A topic to create: compacted topics keep the last record per key (registries, rules). */
export interface TopicSpec {
  name: string
  partitions: number
  replicationFactor: number
  compacted?: boolean
  config?: Record<string, string>
}

/** Topic administration. */
export interface LogAdmin {
  /** Creates the topics that do not exist yet; returns the names it created. */
  ensureTopics(specs: TopicSpec[]): Promise<string[]>
  listTopics(): Promise<string[]>
  partitionCount(topic: string): Promise<number>
  deleteTopics(names: string[]): Promise<void>
  /** The end offset (next offset to be written) of each partition of `topic`. */
  endOffsets(topic: string): Promise<Map<number, string>>
  /** A group's committed offset of each partition of `topic` (-1: none). */
  committedOffsets(groupId: string, topic: string): Promise<Map<number, string>>
  close(): Promise<void>
}

/** An event log: Kafka, or the embedded in-process log. */
export interface EventLog {
  producer(): Promise<Producer>
  transactionalProducer(transactionalId: string): Promise<TransactionalProducer>
  consumer(opts: ConsumerOptions): Promise<Consumer>
  /** Reads one partition from its start to the end offset it has now (committed records only). */
  readPartition(topic: string, partition: number, onRecord: (r: InRecord) => void): Promise<void>
  /** Reads every partition of a topic from its start to the end offsets it has now (committed records only). */
  readTopic(topic: string, onRecord: (r: InRecord) => void): Promise<void>
  admin(): Promise<LogAdmin>
  /** Releases what the log itself holds (not the producers and consumers it handed out). */
  close(): Promise<void>
}
