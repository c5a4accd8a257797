import type {
  Consumer,
  EventLog,
  GroupMember,
  OutRecord,
  PartitionOffset,
  RecordBatch,
} from '../../core/kafka/log'
import type { Logger } from '../../core/logging/logger'
import type { StepResult, StreamJob } from './job'
import { JobMetrics } from './metrics'

/** How a job runs. */
export interface RunOptions {
  /** Consumer group: instances of one job share its partitions. */
  groupId: string
  /** Stable per instance: the transactional id is `<groupId>-<instanceId>`, so a restarted
   * instance fences its previous incarnation's open transaction. */
  instanceId: string
  changelogTopic: string
  /** Processing-time tick for idle watermarks, ms. */
  tickMs?: number
  /** Least time between the starts of two batch transactions, ms (default 0). */
  commitIntervalMs?: number
  /** How often the gauges (consumer lag, watermark lag, state size) are updated, ms. */
  gaugeIntervalMs?: number
  /** The job stopped for good (its consumer crashed on an error retries cannot clear). */
  onFatal?: (err: Error) => void
  /** Where the job's metrics go (a fresh registry when absent). */
  metrics?: JobMetrics
  logger: Logger
}

/** A running job. */
export interface RunningJob {
  /** Partitions this instance has processed batches of (for metrics and tests). */
  processedPartitions(): number[]
  metrics: JobMetrics
  /** Stops taking records, finishes the current transaction, leaves the group. */
  close(): Promise<void>
}

/** Changelog key (+ input topic) of a partition state's position: the next input offset it has
 * not seen. Job keys never start with NUL. */
const POSITION_KEY = '\u0000fs.position\u0000'

/** A partition's state and, per input topic, the next offset it has not seen. */
interface PartitionState<S> {
  state: S
  next: Map<string, bigint>
}

/**
 * Runs a stream job on the event log with exactly-once results: for each batch of a
 * partition, the outputs, the changelog entries of the partition's state, the state's input
 * position and the input offsets are committed in one transaction (read_committed consumers
 * see all or nothing).
 *
 * A partition's state is restored from the changelog when the partition is first processed
 * here, and kept while the group leaves the partition with this instance: it is dropped when
 * an assignment takes the partition away, when this member rejoins the group under a new
 * identity, and after a failed step. Offsets are not expected to be continuous (transaction
 * markers of an upstream job take offsets). Records the state already reflects — delivered
 * again because committed offsets lag behind (a transaction's offsets become visible to the
 * group a moment after it commits) — are skipped, not processed twice.
 */
export async function runJob<S>(job: StreamJob<S>, log: EventLog, opts: RunOptions): Promise<RunningJob> {
  const logger = opts.logger.child({ component: `stream-jobs.${job.name}` })
  const metrics = opts.metrics ?? new JobMetrics()
  const jl = { job: job.name }
  const admin = await log.admin()
  try {
    const partitions = await admin.partitionCount(job.inputTopics[0]!)
    await admin.ensureTopics([
      { name: opts.changelogTopic, partitions, replicationFactor: 1, compacted: true },
      ...job.outputTopics.map((name) => ({ name, partitions, replicationFactor: 1 })),
    ])
  } catch (err) {
    await admin.close()
    throw err
  }
  const producer = await log.transactionalProducer(`${opts.groupId}-${opts.instanceId}`)
  const tables = job.tableTopics ?? []
  const streams = job.inputTopics.filter((t) => !tables.includes(t))
  /** Per assigned partition still bootstrapping: the table topics' end offsets to reach first. */
  const bootstrapping = new Map<number, Map<string, bigint>>()
  let generation = 0
  // onAssign runs only once the consumer runs (after this assignment), so it may use `consumer`.
  const consumer: Consumer = await log.consumer({
    groupId: opts.groupId,
    topics: job.inputTopics,
    fromBeginning: true,
    readCommitted: true,
    // Several partitions' batches at once, so group commit has something to group.
    concurrency: 8,
    onFatal: (err) => {
      logger.error('job stopped: its consumer crashed', { error: err.message })
      opts.onFatal?.(err)
    },
    onAssign: (assignment, rejoined) => {
      // After the batches already queued: drop the states of partitions this instance no longer
      // owns (another instance may process them now; they are restored if they come back).
      const owned = new Set(job.inputTopics.flatMap((t) => assignment.get(t) ?? []))
      void serial(async () => {
        for (const p of [...states.keys()]) if (rejoined || !owned.has(p)) drop(p)
      })
      if (tables.length === 0) return
      // Table topics first: a partition's stream records wait until its table partitions are
      // read to the end offsets they have now (a replay then joins with the full table).
      const mine = [...new Set(tables.flatMap((t) => assignment.get(t) ?? []))]
      for (const t of streams) consumer.pause(t, mine)
      bootstrapping.clear()
      const gen = ++generation
      void bootstrapEnds(mine).then(
        (ends) => {
          if (gen !== generation) return
          for (const [p, m] of ends) bootstrapping.set(p, m)
          for (const p of mine) if (!bootstrapping.has(p)) resumeStreams(p)
        },
        (err: unknown) => {
          logger.error('cannot read the table topics end offsets; resuming without bootstrap', {
            error: (err as Error).message,
          })
          for (const p of mine) resumeStreams(p)
        },
      )
    },
  })

  /** For each partition: the table topics whose committed position is behind their end. */
  async function bootstrapEnds(partitions: number[]): Promise<Map<number, Map<string, bigint>>> {
    const out = new Map<number, Map<string, bigint>>()
    for (const t of tables) {
      const [ends, committed] = await Promise.all([
        admin.endOffsets(t),
        admin.committedOffsets(opts.groupId, t),
      ])
      for (const p of partitions) {
        const end = BigInt(ends.get(p) ?? '0')
        const at = BigInt(committed.get(p) ?? '-1')
        if (end > 0n && at < end) {
          if (!out.has(p)) out.set(p, new Map())
          out.get(p)!.set(t, end)
        }
      }
    }
    return out
  }
  function resumeStreams(partition: number): void {
    bootstrapping.delete(partition)
    for (const t of streams) consumer.resume(t, [partition])
    logger.info('partition bootstrapped from its table topics', { partition })
  }
  /** After a table batch: resume the partition's streams once every table partition is caught up. */
  function tableProgress(topic: string, partition: number, next: bigint): void {
    const waiting = bootstrapping.get(partition)
    if (!waiting) return
    const end = waiting.get(topic)
    if (end !== undefined && next >= end) waiting.delete(topic)
    if (waiting.size === 0) resumeStreams(partition)
  }
  const states = new Map<number, PartitionState<S>>()
  const processed = new Set<number>()
  let chain: Promise<void> = Promise.resolve()
  let closed = false
  // One step at a time: batches and ticks never interleave.
  const serial = (fn: () => Promise<void>): Promise<void> => (chain = chain.then(fn, fn))

  /** A partition's state: the one kept here, or else the one its changelog holds. */
  async function stateFor(partition: number): Promise<PartitionState<S>> {
    const known = states.get(partition)
    if (known !== undefined) return known
    const t0 = Date.now()
    const restored: PartitionState<S> = { state: job.initState(), next: new Map() }
    let entries = 0
    const latest = new Map<string, Buffer | null>()
    await log.readPartition(opts.changelogTopic, partition, (r) => {
      if (r.key !== null) latest.set(r.key, r.value)
    })
    for (const [k, v] of latest) {
      if (!v) continue // deleted (tombstone)
      if (k.startsWith(POSITION_KEY)) {
        restored.next.set(k.slice(POSITION_KEY.length), BigInt(v.toString()))
        continue
      }
      job.restore(restored.state, k, v)
      entries++
    }
    states.set(partition, restored)
    metrics.restoreSeconds.observe(jl, (Date.now() - t0) / 1000)
    metrics.restoredEntries.inc(jl, entries)
    logger.info('state restored from changelog', {
      partition,
      entries,
      ms: Date.now() - t0,
      position: Object.fromEntries([...restored.next].map(([t, o]) => [t, o.toString()])),
    })
    return restored
  }

  /** Forgets a partition's state (it is restored from the changelog if the partition comes again). */
  function drop(partition: number): void {
    states.delete(partition)
    metrics.watermarkLag.remove({ ...jl, partition: String(partition) })
    metrics.stateEntries.remove({ ...jl, partition: String(partition) })
  }

  /** One partition's step to commit: its outputs, its changelog entries, the input offsets it covers. */
  interface Commit {
    partition: number
    step: StepResult
    offsets: PartitionOffset[]
  }

  /** Commits steps (of one or several partitions) in one transaction: all of them or none.
   * `member`: the group membership the inputs were consumed under; the group refuses the
   * offsets, and so the transaction, if it has moved on since (the partitions may be another
   * instance's now). */
  async function commit(steps: Commit[], member: GroupMember | undefined): Promise<void> {
    const records: OutRecord[] = []
    const offsets: PartitionOffset[] = []
    for (const c of steps) {
      records.push(...c.step.outputs)
      for (const [key, value] of c.step.changelog)
        records.push({ topic: opts.changelogTopic, key, value, partition: c.partition })
      // The state's position goes with it: a restored state knows which records it reflects.
      for (const o of c.offsets)
        records.push({
          topic: opts.changelogTopic,
          key: POSITION_KEY + o.topic,
          value: Buffer.from(o.offset),
          partition: c.partition,
        })
      offsets.push(...c.offsets)
    }
    if (records.length === 0 && offsets.length === 0) return
    const tx = await producer.begin()
    try {
      if (records.length) await tx.send(records)
      if (offsets.length) await tx.sendOffsets(opts.groupId, offsets, member)
      await tx.commit()
      metrics.transactions.inc({ ...jl, outcome: 'committed' })
    } catch (err) {
      await tx.abort().catch(() => undefined)
      metrics.transactions.inc({ ...jl, outcome: 'aborted' })
      throw err
    }
    for (const c of steps) count(c.step)
  }

  /**
   * Metrics of a committed step. Outputs are tallied first and each counter is bumped once per
   * label set: prom-client checks the labels on every `inc`, which once per record was ~1.5% of
   * `up`'s main thread with 20,000 readings a second.
   */
  function count(step: StepResult): void {
    const out = new Map<string, number>()
    const dropped = new Map<string, number>()
    let late = 0
    for (const r of step.outputs) {
      out.set(r.topic, (out.get(r.topic) ?? 0) + 1)
      const code = r.headers?.['fs-reason-code']
      if (code === undefined) continue
      if (code === 'FS_JOBS_LATE') late++
      else dropped.set(code.toString(), (dropped.get(code.toString()) ?? 0) + 1)
    }
    for (const [topic, n] of out) metrics.recordsOut.inc({ ...jl, topic }, n)
    if (late) metrics.late.inc(jl, late)
    for (const [reason, n] of dropped) metrics.dropped.inc({ ...jl, reason }, n)
    for (const [kind, n] of Object.entries(step.firings ?? {})) metrics.firings.inc({ ...jl, kind }, n)
  }

  /**
   * Group commit: batches of several partitions (kafkajs hands them over concurrently) that
   * queue up while a transaction is under way are processed one after the other and committed
   * together in the next transaction, so under load a job commits once per round of partitions,
   * not once per batch. Each batch's handler resolves when its transaction has committed.
   */
  interface Queued {
    batch: RecordBatch
    /** The membership the batch was fetched under. */
    member: GroupMember | undefined
    resolve: () => void
    reject: (err: unknown) => void
  }
  const queue: Queued[] = []
  let draining = false
  /** When the last group of batches was taken (commitIntervalMs spaces them). */
  let lastGroupAt = 0
  const drain = async (): Promise<void> => {
    if (draining) return
    draining = true
    try {
      // kafkajs hands a fetch's batches to its workers one after the other in the same turn
      // of the event loop: wait for the turn to end, so they all go into the first group and one
      // transaction (taking only the first made every fetch of two partitions two transactions).
      await new Promise((resolve) => setImmediate(resolve))
      while (queue.length) {
        const wait = lastGroupAt + (opts.commitIntervalMs ?? 0) - Date.now()
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
        lastGroupAt = Date.now()
        const group = queue.splice(0, queue.length)
        await serial(() => stepGroup(group))
      }
    } finally {
      draining = false
    }
  }

  const failed = (q: Queued, err: unknown) => {
    // The state may hold what was not committed: restore it next time.
    drop(q.batch.partition)
    metrics.batchFailures.inc(jl)
    logger.warn('batch failed: the partition state will be restored and the batch retried', {
      topic: q.batch.topic,
      partition: q.batch.partition,
      error: (err as Error).message,
    })
    q.reject(err)
  }

  /** Processes queued batches in order, commits their steps in one transaction, settles their handlers. */
  async function stepGroup(group: Queued[]): Promise<void> {
    const t0 = Date.now()
    const done: { q: Queued; commit: Commit; next: bigint; count: number }[] = []
    for (const q of group) {
      const b = q.batch
      if (bootstrapping.has(b.partition) && !tables.includes(b.topic)) {
        // Fetched just before the pause took effect: refuse it, so it comes again after the bootstrap.
        q.reject(new Error(`partition ${b.partition} is still reading its table topics`))
        continue
      }
      try {
        const ps = await stateFor(b.partition)
        const from = ps.next.get(b.topic)
        const records = from === undefined ? b.records : b.records.filter((r) => BigInt(r.offset) >= from)
        if (records.length < b.records.length) {
          metrics.skipped.inc(jl, b.records.length - records.length)
          logger.info('skipped records the state already reflects', {
            topic: b.topic,
            partition: b.partition,
            skipped: b.records.length - records.length,
            position: from!.toString(),
          })
        }
        if (records.length === 0) {
          q.resolve()
          continue
        }
        const step = await job.process(ps.state, records, Date.now())
        const next = BigInt(records[records.length - 1]!.offset) + 1n
        done.push({
          q,
          next,
          count: records.length,
          commit: {
            partition: b.partition,
            step,
            offsets: [{ topic: b.topic, partition: b.partition, offset: next.toString() }],
          },
        })
      } catch (err) {
        failed(q, err)
      }
    }
    if (done.length === 0) return
    // The oldest membership among the batches: if the group has moved on from it, none commit.
    let member: GroupMember | undefined
    for (const d of done)
      if (d.q.member && (!member || d.q.member.generationId < member.generationId)) member = d.q.member
    try {
      await commit(
        done.map((d) => d.commit),
        member,
      )
    } catch (err) {
      for (const d of done) failed(d.q, err)
      return
    }
    for (const { q, next, count } of done) {
      const b = q.batch
      states.get(b.partition)?.next.set(b.topic, next)
      if (tables.includes(b.topic)) tableProgress(b.topic, b.partition, next)
      metrics.recordsIn.inc({ ...jl, topic: b.topic }, count)
      processed.add(b.partition)
      q.resolve()
    }
    metrics.batchSeconds.observe(jl, (Date.now() - t0) / 1000)
  }

  await consumer.run(
    (batch) =>
      new Promise<void>((resolve, reject) => {
        queue.push({ batch, member: consumer.member(), resolve, reject })
        void drain()
      }),
  )

  const timer = setInterval(() => {
    if (closed || !job.tick) return
    void serial(async () => {
      const mine = new Set(job.inputTopics.flatMap((t) => consumer.assignment().get(t) ?? []))
      const steps: Commit[] = []
      for (const [partition, ps] of states) {
        if (!mine.has(partition)) {
          drop(partition) // revoked: another instance owns it now
          continue
        }
        const step = job.tick!(ps.state, Date.now())
        // A tick that writes commits the partition's positions again, only so that the group
        // can refuse it if this instance no longer owns the partition.
        const writes = step.outputs.length > 0 || step.changelog.size > 0
        const offsets = writes
          ? [...ps.next].map(([topic, o]) => ({ topic, partition, offset: o.toString() }))
          : []
        steps.push({ partition, step, offsets })
      }
      await commit(steps, consumer.member()).catch((err: unknown) => {
        for (const c of steps) drop(c.partition)
        throw err
      })
    }).catch((err: unknown) => logger.warn('tick failed', { error: (err as Error).message }))
  }, opts.tickMs ?? 1000)

  /** Gauges: watermark lag and state size per partition, consumer lag of the assigned
   * partitions this instance has positions for. */
  const readGauges = async () => {
    for (const [partition, { state }] of states) {
      const p = { ...jl, partition: String(partition) }
      const wm = job.watermark?.(state)
      if (wm !== undefined && Number.isFinite(wm)) metrics.watermarkLag.set(p, Date.now() - wm)
      if (job.stateSize) metrics.stateEntries.set(p, job.stateSize(state))
    }
    for (const topic of job.inputTopics) {
      const ends = await admin.endOffsets(topic)
      for (const p of consumer.assignment().get(topic) ?? []) {
        const next = states.get(p)?.next.get(topic)
        const end = ends.get(p)
        if (next === undefined || end === undefined) continue
        const lag = BigInt(end) - next
        metrics.consumerLag.set({ ...jl, topic, partition: String(p) }, Number(lag > 0n ? lag : 0n))
      }
    }
  }
  const lagTimer = setInterval(() => {
    if (closed) return
    readGauges().catch((err: unknown) =>
      logger.warn('cannot read consumer lag', { error: (err as Error).message }),
    )
  }, opts.gaugeIntervalMs ?? 5_000)

  logger.info('job started', { groupId: opts.groupId, instanceId: opts.instanceId })
  return {
    processedPartitions: () => [...processed].sort((x, y) => x - y),
    metrics,
    close: async () => {
      closed = true
      clearInterval(timer)
      clearInterval(lagTimer)
      await chain.catch(() => undefined)
      await consumer.close()
      await producer.close()
      await admin.close()
    },
  }
}
