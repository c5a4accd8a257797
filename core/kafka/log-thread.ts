/**
 * An event log across a thread boundary. `serveEventLog` runs on the thread that owns a log
 * (in `up`, the main thread with the embedded log) and carries out the calls that a
 * `ThreadEventLog` on a worker thread makes; the worker's roles (the stream jobs) use it as
 * they use any EventLog. Records cross packed into one transferred buffer per batch
 * (record-pack.ts: a Buffer handed to postMessage would copy the whole pool slab it is a view
 * of). What the interface reads synchronously (a consumer's assignment and membership) the
 * worker keeps a copy of, sent with every assignment and with every batch when it has changed.
 */
import { FleetError, LogError } from '../errors'
import type {
  BatchContext,
  Consumer,
  ConsumerOptions,
  EventLog,
  GroupMember,
  InRecord,
  LogAdmin,
  OutRecord,
  PartitionOffset,
  Producer,
  RecordBatch,
  RecordMeta,
  Transaction,
  TransactionalProducer,
} from './log'
import { isPackable, packRecords, takesPacked, unpackInRecords, unpackRecords } from './record-pack'

/** Either end of the channel: a Worker, or a worker's parentPort. */
export interface Channel {
  postMessage(message: unknown, transfer?: ArrayBuffer[]): void
  on(event: 'message', listener: (message: unknown) => void): unknown
  off(event: 'message', listener: (message: unknown) => void): unknown
}

/** An error as it crosses: enough to rebuild a LogError that loops can retry or not. */
interface WireError {
  message: string
  retriable: boolean
}

/** Records as they cross: packed, with their offsets beside them. */
interface Packed {
  packed: ArrayBuffer
  offsets: Float64Array
}

type ToOwner =
  | { lt: 'call'; id: number; op: string; h?: number; args: unknown[]; packed?: ArrayBuffer }
  | { lt: 'batchDone'; bid: number; error?: WireError }
  | { lt: 'assigned'; h: number }

type ToWorker =
  | { lt: 'reply'; id: number; value?: unknown; error?: WireError }
  | ({ lt: 'records'; id: number } & Packed)
  | ({
      lt: 'batch'
      h: number
      bid: number
      topic: string
      partition: number
    } & ({ same: true } | { assignment: Map<string, number[]>; member: GroupMember | undefined }) &
      Packed)
  | {
      lt: 'assign'
      h: number
      assignment: Map<string, number[]>
      member: GroupMember | undefined
      rejoined: boolean
    }
  | { lt: 'fatal'; h: number; error: WireError }

const isMessage = (m: unknown): m is { lt: string } =>
  typeof m === 'object' && m !== null && typeof (m as { lt?: unknown }).lt === 'string'

const toWire = (err: unknown): WireError => ({
  message: (err as Error)?.message ?? String(err),
  retriable: err instanceof FleetError ? err.retriable : false,
})
const fromWire = (e: WireError) => new LogError(e.message, { retriable: e.retriable })

/** A batch's records packed: as the embedded log hands them over (copied as they are, not
 * read), or packed from the records themselves (a consumed record is a record to pack). */
function packBatch(batch: RecordBatch): Packed {
  if (isPackable(batch)) return batch.pack()
  return packIn(batch.records)
}

function packIn(records: readonly InRecord[]): Packed {
  const offsets = new Float64Array(records.length)
  for (let i = 0; i < records.length; i++) offsets[i] = Number(records[i]!.offset)
  return { packed: packRecords(records).buffer as ArrayBuffer, offsets }
}

const unpackIn = (p: Packed): InRecord[] => unpackInRecords(Buffer.from(p.packed), p.offsets)

const packOut = (records: readonly OutRecord[]): ArrayBuffer => packRecords(records).buffer as ArrayBuffer

/** Per consumer: the partitions the worker paused, the assignment it has not yet taken, and
 * the assignment and membership it was last sent. */
interface Gate {
  paused: Set<string>
  held: string[] | undefined
  sent?: [Map<string, number[]>, GroupMember | undefined]
}

/** How many records one `records` message carries while a partition or topic is read. */
const READ_CHUNK = 2_000

/**
 * Serves `log` to the worker at the other end of `channel` until `stop`. Producers, consumers
 * and admins the worker opens live here, under handles; `stop` closes those still open.
 */
export function serveEventLog(log: EventLog, channel: Channel): { stop(): Promise<void> } {
  const objects = new Map<number, unknown>()
  const batches = new Map<number, { ctx: BatchContext; resolve: () => void; reject: (e: Error) => void }>()
  const consumers = new Map<number, Gate>()
  let next = 1
  const post = (m: ToWorker, transfer: ArrayBuffer[] = []) => channel.postMessage(m, transfer)
  const keep = (o: unknown): number => {
    objects.set(next, o)
    return next++
  }
  const get = <T>(h: number | undefined): T => {
    const o = objects.get(h ?? -1)
    if (o === undefined) throw new LogError(`no such handle ${h} on the log's thread`, { retriable: false })
    return o as T
  }

  const openConsumer = async (opts: ConsumerOptions): Promise<number> => {
    const h = next++
    const gate: Gate = { paused: new Set<string>(), held: undefined }
    consumers.set(h, gate)
    const consumer = await log.consumer({
      ...opts,
      onFatal: (err) => post({ lt: 'fatal', h, error: toWire(err) }),
      onAssign: (assignment, rejoined) => {
        // The worker's onAssign may pause partitions (a job reading its tables first); its
        // pauses arrive later than a fetch would start. Until it has taken the assignment, hold
        // every partition; then resume those it did not pause.
        const all = [...assignment].flatMap(([t, ps]) => ps.map((p) => `${t}/${p}`))
        for (const [t, ps] of assignment) consumer.pause(t, ps)
        gate.held = all
        const member = consumer.member()
        gate.sent = [assignment, member]
        post({ lt: 'assign', h, assignment, member, rejoined })
      },
    })
    objects.set(h, consumer)
    return h
  }

  const run = async (h: number): Promise<void> => {
    const consumer = get<Consumer>(h)
    const gate = consumers.get(h)
    await consumer.run(
      (batch, ctx) =>
        new Promise<void>((resolve, reject) => {
          const bid = next++
          batches.set(bid, { ctx, resolve, reject })
          const p = packBatch(batch)
          // The assignment and membership cross only when they are not those the worker has:
          // a Map cloned with every batch was most of what posting a batch cost.
          const assignment = consumer.assignment()
          const member = consumer.member()
          const same = gate?.sent?.[0] === assignment && gate.sent[1] === member
          if (gate && !same) gate.sent = [assignment, member]
          post(
            {
              lt: 'batch',
              h,
              bid,
              topic: batch.topic,
              partition: batch.partition,
              ...(same ? { same: true } : { assignment, member }),
              ...p,
            },
            [p.packed, p.offsets.buffer as ArrayBuffer],
          )
        }),
    )
  }

  const read = async (id: number, reading: (onRecord: (r: InRecord) => void) => Promise<void>) => {
    let chunk: InRecord[] = []
    const flush = () => {
      const p = packIn(chunk)
      post({ lt: 'records', id, ...p }, [p.packed, p.offsets.buffer as ArrayBuffer])
      chunk = []
    }
    await reading((r) => {
      chunk.push(r)
      if (chunk.length >= READ_CHUNK) flush()
    })
    if (chunk.length > 0) flush()
  }

  const ops: Record<string, (m: Extract<ToOwner, { lt: 'call' }>) => unknown> = {
    producer: async () => keep(await log.producer()),
    send: (m) => {
      const producer = get<Producer>(m.h)
      const packed = Buffer.from(m.packed!)
      return takesPacked(producer) ? producer.sendPacked(packed) : producer.send(unpackRecords(packed))
    },
    transactionalProducer: async (m) => keep(await log.transactionalProducer(m.args[0] as string)),
    transaction: async (m) => {
      const tx = await get<TransactionalProducer>(m.h).begin()
      try {
        if (m.packed) {
          const packed = Buffer.from(m.packed)
          await (takesPacked(tx) ? tx.sendPacked(packed) : tx.send(unpackRecords(packed)))
        }
        for (const o of m.args as TxOffsets[]) await tx.sendOffsets(o.groupId, o.offsets, o.member)
        await tx.commit()
      } catch (err) {
        await tx.abort().catch(() => undefined)
        throw err
      }
    },
    consumer: (m) => openConsumer(m.args[0] as ConsumerOptions),
    run: (m) => run(m.h!),
    commit: (m) => get<Consumer>(m.h).commit(m.args[0] as PartitionOffset[]),
    pause: (m) => {
      const [topic, partitions] = m.args as [string, number[]]
      for (const p of partitions) consumers.get(m.h!)?.paused.add(`${topic}/${p}`)
      get<Consumer>(m.h).pause(topic, partitions)
    },
    resume: (m) => {
      const [topic, partitions] = m.args as [string, number[]]
      for (const p of partitions) consumers.get(m.h!)?.paused.delete(`${topic}/${p}`)
      get<Consumer>(m.h).resume(topic, partitions)
    },
    batchCommit: (m) => batches.get(m.args[0] as number)?.ctx.commit(m.args[1] as PartitionOffset[]),
    batchHeartbeat: (m) => batches.get(m.args[0] as number)?.ctx.heartbeat(),
    readPartition: (m) => read(m.id, (on) => log.readPartition(m.args[0] as string, m.args[1] as number, on)),
    readTopic: (m) => read(m.id, (on) => log.readTopic(m.args[0] as string, on)),
    admin: async () => keep(await log.admin()),
    adminCall: (m) => {
      const admin = get<LogAdmin>(m.h) as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>
      const method = m.args[0] as string
      if (
        ![
          'ensureTopics',
          'listTopics',
          'partitionCount',
          'deleteTopics',
          'endOffsets',
          'committedOffsets',
        ].includes(method)
      )
        throw new LogError(`no admin call ${method}`, { retriable: false })
      return admin[method]!(...m.args.slice(1))
    },
    close: async (m) => {
      const o = get<{ close(): Promise<void> }>(m.h)
      objects.delete(m.h!)
      consumers.delete(m.h!)
      await o.close()
    },
  }

  const onMessage = (raw: unknown) => {
    if (!isMessage(raw)) return
    const m = raw as ToOwner
    if (m.lt === 'batchDone') {
      const b = batches.get(m.bid)
      batches.delete(m.bid)
      if (m.error) b?.reject(fromWire(m.error))
      else b?.resolve()
      return
    }
    if (m.lt === 'assigned') {
      const gate = consumers.get(m.h)
      const consumer = objects.get(m.h) as Consumer | undefined
      if (!gate?.held || !consumer) return
      for (const tp of gate.held) {
        if (gate.paused.has(tp)) continue
        const at = tp.lastIndexOf('/')
        consumer.resume(tp.slice(0, at), [Number(tp.slice(at + 1))])
      }
      gate.held = undefined
      return
    }
    if (m.lt !== 'call') return
    const op = ops[m.op]
    Promise.resolve()
      .then(() => {
        if (!op) throw new LogError(`no log call ${m.op}`, { retriable: false })
        return op(m)
      })
      .then(
        // What crosses back: a handle (number), record metadata or names (arrays), offsets (Maps);
        // anything else an op returns is of no use to the caller, and might not clone.
        (value) =>
          m.id > 0 &&
          post({
            lt: 'reply',
            id: m.id,
            value:
              typeof value === 'number' || value instanceof Map || Array.isArray(value) ? value : undefined,
          }),
        (err: unknown) => m.id > 0 && post({ lt: 'reply', id: m.id, error: toWire(err) }),
      )
  }
  channel.on('message', onMessage)

  return {
    async stop() {
      channel.off('message', onMessage)
      for (const b of batches.values()) b.reject(new LogError('the log thread stopped', { retriable: true }))
      batches.clear()
      for (const [h, o] of [...objects].reverse()) {
        objects.delete(h)
        const c = o as { close?: () => Promise<void>; abort?: () => Promise<void> }
        if (c.abort) await c.abort().catch(() => undefined)
        else if (c.close) await c.close().catch(() => undefined)
      }
    },
  }
}

/** Offsets a transaction commits for a group, as they cross. */
interface TxOffsets {
  groupId: string
  offsets: PartitionOffset[]
  member: GroupMember | undefined
}

/**
 * A transaction on the worker's side: its records and offsets are kept here and cross once, at
 * `commit`, where the log's thread begins, writes, commits (or aborts on any error) in one call.
 * One message each way instead of four round trips (begin, send, offsets, commit), each of which
 * waited for the log's thread to be free (in `up` the main thread, busy with the bridge). A
 * transaction is all or nothing, so an error its records or offsets would have raised at `send`
 * raises at `commit` instead; `abort` before `commit` has nothing to undo.
 */
class DeferredTransaction implements Transaction {
  private readonly records: OutRecord[] = []
  private readonly offsets: TxOffsets[] = []
  private ended = false

  constructor(private readonly run: (records: OutRecord[], offsets: TxOffsets[]) => Promise<unknown>) {}

  private open(): void {
    if (this.ended) throw new LogError('the transaction has ended', { retriable: false })
  }

  async send(records: OutRecord[]): Promise<void> {
    this.open()
    for (const r of records) this.records.push(r)
  }

  async sendOffsets(groupId: string, offsets: PartitionOffset[], member?: GroupMember): Promise<void> {
    this.open()
    this.offsets.push({ groupId, offsets, member })
  }

  async commit(): Promise<void> {
    this.open()
    this.ended = true
    await this.run(this.records, this.offsets)
  }

  async abort(): Promise<void> {
    this.ended = true
  }
}

/** The worker's end: an EventLog whose calls the thread at the other end carries out. */
export class ThreadEventLog implements EventLog {
  private next = 1
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  private readonly readers = new Map<number, (r: InRecord) => void>()
  private readonly consumers = new Map<number, ThreadConsumer>()
  private readonly onMessage = (raw: unknown) => {
    if (!isMessage(raw)) return
    const m = raw as ToWorker
    switch (m.lt) {
      case 'reply': {
        const p = this.pending.get(m.id)
        this.pending.delete(m.id)
        this.readers.delete(m.id)
        if (m.error) p?.reject(fromWire(m.error))
        else p?.resolve(m.value)
        return
      }
      case 'records': {
        const on = this.readers.get(m.id)
        if (on) for (const r of unpackIn(m)) on(r)
        return
      }
      case 'batch':
        this.consumers.get(m.h)?.batch(m)
        return
      case 'assign':
        this.consumers.get(m.h)?.assign(m.assignment, m.member, m.rejoined)
        this.post({ lt: 'assigned', h: m.h })
        return
      case 'fatal':
        this.consumers.get(m.h)?.fatal(fromWire(m.error))
        return
    }
  }

  constructor(private readonly channel: Channel) {
    channel.on('message', this.onMessage)
  }

  post(m: ToOwner, transfer: ArrayBuffer[] = []): void {
    this.channel.postMessage(m, transfer)
  }

  /** Calls `op` on the log's thread; resolves with what it returned. */
  call<T>(op: string, h: number | undefined, args: unknown[] = [], packed?: ArrayBuffer): Promise<T> {
    const id = this.next++
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.post({ lt: 'call', id, op, h, args, packed }, packed ? [packed] : [])
    })
  }

  /** Calls `op` without waiting for it (ordered with every other call). */
  tell(op: string, h: number | undefined, args: unknown[]): void {
    this.post({ lt: 'call', id: 0, op, h, args })
  }

  async producer(): Promise<Producer> {
    const h = await this.call<number>('producer', undefined)
    return {
      send: (records) =>
        records.length === 0
          ? Promise.resolve([])
          : this.call<RecordMeta[]>('send', h, [], packOut(records)).then((m) => m ?? []),
      close: () => this.call('close', h),
    }
  }

  async transactionalProducer(transactionalId: string): Promise<TransactionalProducer> {
    const h = await this.call<number>('transactionalProducer', undefined, [transactionalId])
    return {
      begin: async () =>
        new DeferredTransaction((records, offsets) =>
          this.call('transaction', h, offsets, records.length > 0 ? packOut(records) : undefined),
        ),
      close: () => this.call('close', h),
    }
  }

  async consumer(opts: ConsumerOptions): Promise<Consumer> {
    const { onFatal, onAssign, ...plain } = opts
    const h = await this.call<number>('consumer', undefined, [plain])
    const c = new ThreadConsumer(this, h, onFatal, onAssign)
    this.consumers.set(h, c)
    return c
  }

  readPartition(topic: string, partition: number, onRecord: (r: InRecord) => void): Promise<void> {
    return this.read('readPartition', [topic, partition], onRecord)
  }

  readTopic(topic: string, onRecord: (r: InRecord) => void): Promise<void> {
    return this.read('readTopic', [topic], onRecord)
  }

  private read(op: string, args: unknown[], onRecord: (r: InRecord) => void): Promise<void> {
    const id = this.next++
    this.readers.set(id, onRecord)
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve: () => resolve(), reject })
      this.post({ lt: 'call', id, op, args })
    })
  }

  async admin(): Promise<LogAdmin> {
    const h = await this.call<number>('admin', undefined)
    const call = <T>(method: string, ...args: unknown[]) => this.call<T>('adminCall', h, [method, ...args])
    return {
      ensureTopics: (specs) => call('ensureTopics', specs),
      listTopics: () => call('listTopics'),
      partitionCount: (topic) => call('partitionCount', topic),
      deleteTopics: (names) => call('deleteTopics', names),
      endOffsets: (topic) => call('endOffsets', topic),
      committedOffsets: (groupId, topic) => call('committedOffsets', groupId, topic),
      close: () => this.call('close', h),
    }
  }

  /** Forgets the calls in flight (they fail); the log itself belongs to the other thread. */
  async close(): Promise<void> {
    this.channel.off('message', this.onMessage)
    const err = new LogError('the log client closed', { retriable: false })
    for (const p of this.pending.values()) p.reject(err)
    this.pending.clear()
  }

  forget(h: number): void {
    this.consumers.delete(h)
  }
}

/** A consumer whose group membership lives on the log's thread. */
class ThreadConsumer implements Consumer {
  private handler?: (batch: RecordBatch, ctx: BatchContext) => Promise<void>
  private current = new Map<string, number[]>()
  private membership: GroupMember | undefined

  constructor(
    private readonly log: ThreadEventLog,
    private readonly h: number,
    private readonly onFatal?: (err: Error) => void,
    private readonly onAssign?: (assignment: Map<string, number[]>, rejoined: boolean) => void,
  ) {}

  async run(handler: (batch: RecordBatch, ctx: BatchContext) => Promise<void>): Promise<void> {
    this.handler = handler
    await this.log.call('run', this.h)
  }

  assign(assignment: Map<string, number[]>, member: GroupMember | undefined, rejoined: boolean): void {
    this.current = assignment
    this.membership = member
    this.onAssign?.(assignment, rejoined)
  }

  batch(m: Extract<ToWorker, { lt: 'batch' }>): void {
    if (!('same' in m)) {
      this.current = m.assignment
      this.membership = m.member
    }
    const done = (error?: WireError) => this.log.post({ lt: 'batchDone', bid: m.bid, error })
    const ctx: BatchContext = {
      commit: (offsets) => this.log.call('batchCommit', undefined, [m.bid, offsets]),
      heartbeat: () => this.log.call('batchHeartbeat', undefined, [m.bid]),
    }
    const handler = this.handler
    if (!handler) return done({ message: 'the consumer is not running', retriable: true })
    let records: InRecord[]
    try {
      records = unpackIn(m)
    } catch (err) {
      return done(toWire(err))
    }
    handler({ topic: m.topic, partition: m.partition, records }, ctx).then(
      () => done(),
      (err: unknown) => done(toWire(err)),
    )
  }

  fatal(err: Error): void {
    this.onFatal?.(err)
  }

  commit(offsets: PartitionOffset[]): Promise<void> {
    return this.log.call('commit', this.h, [offsets])
  }

  assignment(): Map<string, number[]> {
    return this.current
  }

  member(): GroupMember | undefined {
    return this.membership
  }

  pause(topic: string, partitions: number[]): void {
    this.log.tell('pause', this.h, [topic, partitions])
  }

  resume(topic: string, partitions: number[]): void {
    this.log.tell('resume', this.h, [topic, partitions])
  }

  async close(): Promise<void> {
    await this.log.call('close', this.h)
    this.log.forget(this.h)
  }
}
