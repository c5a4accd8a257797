import type { Consumer, EventLog, OutRecord, PartitionOffset } from '../../core/kafka/log'
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

/**
 * Runs a stream job on the event log with exactly-once results: for each batch of a
 * partition, the outputs, the changelog entries of the partition's state and the input offsets
 * are committed in one transaction (read_committed consumers see all or nothing). A
 * partition's state is restored from the changelog the first time it is seen, and again
 * whenever its offsets are not continuous (another instance processed it meanwhile).
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
  // eslint-disable-next-line prefer-const -- assigned once the consumer exists; onAssign needs it
  let consumer: Consumer
  const consumerReady = log.consumer({
    groupId: opts.groupId,
    topics: job.inputTopics,
    fromBeginning: true,
    readCommitted: true,
    onFatal: (err) => {
      logger.error('job stopped: its consumer crashed', { error: err.message })
      opts.onFatal?.(err)
    },
    onAssign: (assignment) => {
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
  consumer = await consumerReady

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
  const states = new Map<number, S>()
  const nextOffset = new Map<string, bigint>()
  const processed = new Set<number>()
  let chain: Promise<void> = Promise.resolve()
  let closed = false
  // One step at a time: batches and ticks never interleave.
  const serial = (fn: () => Promise<void>): Promise<void> => (chain = chain.then(fn, fn))

  /** A partition's state, trusted only while the offsets of `topic` continue where they stopped. */
  async function stateFor(topic: string, partition: number, firstOffset: bigint): Promise<S> {
    const known = states.get(partition)
    const expected = nextOffset.get(`${topic}:${partition}`)
    if (known !== undefined && (expected === undefined || expected === firstOffset)) return known
    const t0 = Date.now()
    const st = job.initState()
    let entries = 0
    const latest = new Map<string, Buffer | null>()
    await log.readPartition(opts.changelogTopic, partition, (r) => {
      if (r.key !== null) latest.set(r.key, r.value)
    })
    for (const [k, v] of latest) {
      if (!v) continue // deleted (tombstone)
      job.restore(st, k, v)
      entries++
    }
    states.set(partition, st)
    metrics.restoreSeconds.observe(jl, (Date.now() - t0) / 1000)
    metrics.restoredEntries.inc(jl, entries)
    logger.info('state restored from changelog', {
      partition,
      entries,
      ms: Date.now() - t0,
      expectedOffset: expected?.toString(),
      firstOffset: firstOffset.toString(),
    })
    return st
  }

  async function commit(partition: number, step: StepResult, offsets: PartitionOffset[]): Promise<void> {
    if (step.outputs.length === 0 && step.changelog.size === 0 && offsets.length === 0) return
    const changelog: OutRecord[] = [...step.changelog].map(([key, value]) => ({
      topic: opts.changelogTopic,
      key,
      value,
      partition,
    }))
    const tx = await producer.begin()
    try {
      await tx.send([...step.outputs, ...changelog])
      if (offsets.length) await tx.sendOffsets(opts.groupId, offsets)
      await tx.commit()
      metrics.transactions.inc({ ...jl, outcome: 'committed' })
    } catch (err) {
      await tx.abort().catch(() => undefined)
      metrics.transactions.inc({ ...jl, outcome: 'aborted' })
      throw err
    }
    count(step)
  }

  /** Metrics of a committed step. */
  function count(step: StepResult): void {
    for (const r of step.outputs) {
      metrics.recordsOut.inc({ ...jl, topic: r.topic })
      const code = r.headers?.['fs-reason-code']
      if (code === 'FS_JOBS_LATE') metrics.late.inc(jl)
      else if (code !== undefined) metrics.dropped.inc({ ...jl, reason: code.toString() })
    }
    for (const [kind, n] of Object.entries(step.firings ?? {})) metrics.firings.inc({ ...jl, kind }, n)
  }

  /** After a failed step the in-memory state may hold what was not committed: restore it next time. */
  function forget(partition: number): void {
    states.delete(partition)
    for (const k of nextOffset.keys()) if (k.endsWith(`:${partition}`)) nextOffset.delete(k)
  }

  await consumer.run((batch) =>
    serial(async () => {
      const t0 = Date.now()
      if (bootstrapping.has(batch.partition) && !tables.includes(batch.topic))
        // Fetched just before the pause took effect: refuse it, so it comes again after the bootstrap.
        throw new Error(`partition ${batch.partition} is still reading its table topics`)
      try {
        const first = BigInt(batch.records[0]!.offset)
        const st = await stateFor(batch.topic, batch.partition, first)
        const step = await job.process(st, batch.records, Date.now())
        const next = BigInt(batch.records[batch.records.length - 1]!.offset) + 1n
        await commit(batch.partition, step, [
          { topic: batch.topic, partition: batch.partition, offset: next.toString() },
        ])
        nextOffset.set(`${batch.topic}:${batch.partition}`, next)
        if (tables.includes(batch.topic)) tableProgress(batch.topic, batch.partition, next)
      } catch (err) {
        forget(batch.partition)
        metrics.batchFailures.inc(jl)
        logger.warn('batch failed: the partition state will be restored and the batch retried', {
          topic: batch.topic,
          partition: batch.partition,
          error: (err as Error).message,
        })
        throw err
      }
      metrics.recordsIn.inc({ ...jl, topic: batch.topic }, batch.records.length)
      processed.add(batch.partition)
      metrics.batchSeconds.observe(jl, (Date.now() - t0) / 1000)
    }),
  )

  const timer = setInterval(() => {
    if (closed || !job.tick) return
    void serial(async () => {
      const mine = new Set(job.inputTopics.flatMap((t) => consumer.assignment().get(t) ?? []))
      for (const [partition, st] of states) {
        if (!mine.has(partition)) {
          states.delete(partition) // revoked: another instance owns it now
          metrics.watermarkLag.remove({ ...jl, partition: String(partition) })
          metrics.stateEntries.remove({ ...jl, partition: String(partition) })
          continue
        }
        await commit(partition, job.tick!(st, Date.now()), []).catch((err: unknown) => {
          forget(partition)
          throw err
        })
      }
    }).catch((err: unknown) => logger.warn('tick failed', { error: (err as Error).message }))
  }, opts.tickMs ?? 1000)

  /** Gauges: watermark lag and state size per partition, consumer lag of the assigned
   * partitions this instance has positions for. */
  const readGauges = async () => {
    for (const [partition, st] of states) {
      const p = { ...jl, partition: String(partition) }
      const wm = job.watermark?.(st)
      if (wm !== undefined && Number.isFinite(wm)) metrics.watermarkLag.set(p, Date.now() - wm)
      if (job.stateSize) metrics.stateEntries.set(p, job.stateSize(st))
    }
    for (const topic of job.inputTopics) {
      const ends = await admin.endOffsets(topic)
      for (const p of consumer.assignment().get(topic) ?? []) {
        const next = nextOffset.get(`${topic}:${p}`)
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
