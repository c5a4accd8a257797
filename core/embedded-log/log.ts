import { LogError } from '../errors'
import type {
  BatchContext,
  Consumer,
  ConsumerOptions,
  EventLog,
  InRecord,
  LogAdmin,
  OutRecord,
  PartitionOffset,
  Producer,
  RecordBatch,
  RecordMeta,
  TopicSpec,
  Transaction,
  TransactionalProducer,
} from '../kafka/log'
import { murmur2, toPositive } from '../kafka/murmur2'
import type { Logger } from '../logging/logger'
import {
  keyRange,
  layoutOf,
  packRecords,
  packRefs,
  readInRecord,
  unpackRecords,
  type PackableBatch,
  type PackedLayout,
  type PackedRef,
} from '../kafka/record-pack'
import { Journal, msgpackCodec, type JournalCodec } from './journal'

/**
 * One stored record, held in place in the packed buffer it was written in (record-pack.ts:
 * the buffer a worker thread's transaction sent, or the one a send was packed into for the
 * journal); `seg` is the journal segment that holds it. Not an object per key, value and
 * headers each: the records are read (and handed to a worker thread, copied as they are) only
 * when consumed. A partition keeps its records in columns (Partition); a Rec is made when one
 * is fetched.
 */
export interface Rec extends PackedRef {
  offset: number
  seg: number
}

/**
 * A partition's records, in offset order, as columns: the buffer each is in, where in it, its
 * offset and segment. Not an object per record: at 10,000 devices `up` held ~1.3 million
 * records, ~40% of the main thread's heap objects, each promoted to the old generation and
 * marked again by every full GC (those GCs' marking was most of the stalls of `up` at 20,000
 * readings/s). The live records are at [head, tail) of the columns.
 */
export class Partition {
  /** Sized as the typed columns (allocated only when they are): a JS array left to grow by
   * itself, and sliced at each compaction, made a large array in the old generation every few
   * thousand records of a partition, most of what `apply` left for the full GCs. */
  private bufs: (Buffer | undefined)[] = []
  private at = new Int32Array(0)
  private end = new Int32Array(0)
  private offsets = new Float64Array(0)
  private segs = new Float64Array(0)
  private head = 0
  private tail = 0
  /** The next offset to be written (Kafka's end offset). */
  next = 0
  readonly waiters = new Set<() => void>()

  get length(): number {
    return this.tail - this.head
  }
  offsetAt(i: number): number {
    return this.offsets[this.head + i]!
  }
  segAt(i: number): number {
    return this.segs[this.head + i]!
  }
  setSeg(i: number, seg: number): void {
    this.segs[this.head + i] = seg
  }
  /** Records i to j (exclusive), as objects. */
  slice(i: number, j: number): Rec[] {
    const from = this.head + Math.max(0, i)
    const to = this.head + Math.min(j, this.length)
    const out: Rec[] = []
    for (let k = from; k < to; k++)
      out.push({
        buf: this.bufs[k]!,
        at: this.at[k]!,
        end: this.end[k]!,
        offset: this.offsets[k]!,
        seg: this.segs[k]!,
      })
    return out
  }
  push(buf: Buffer, at: number, end: number, offset: number, seg: number): void {
    if (this.tail === this.at.length) this.room(this.length + 1)
    const k = this.tail++
    this.bufs[k] = buf
    this.at[k] = at
    this.end[k] = end
    this.offsets[k] = offset
    this.segs[k] = seg
  }
  /** Forgets the first `n` records. */
  drop(n: number): void {
    const to = this.head + Math.min(n, this.length)
    for (let k = this.head; k < to; k++) this.bufs[k] = undefined // their buffers may go
    this.head = to
    if (this.head === this.tail) this.head = this.tail = 0
  }
  /** Replaces every record with `recs` (in offset order). */
  replace(recs: readonly Rec[]): void {
    this.bufs = []
    this.at = this.end = new Int32Array(0)
    this.offsets = this.segs = new Float64Array(0)
    this.head = this.tail = 0
    this.room(recs.length)
    for (const r of recs) this.push(r.buf, r.at, r.end, r.offset, r.seg)
  }
  /** Makes room for `n` records: moves the live ones down to 0, into columns twice as large
   * as `n` when they would be over half full. */
  private room(n: number): void {
    const live = this.length
    const cap = n > this.at.length / 2 ? Math.max(64, 2 * n) : this.at.length
    const move = <A extends Int32Array | Float64Array>(col: A, make: (n: number) => A): A => {
      const to = cap === col.length ? col : make(cap)
      if (to === col) col.copyWithin(0, this.head, this.tail)
      else to.set(col.subarray(this.head, this.tail))
      return to
    }
    this.at = move(this.at, (c) => new Int32Array(c))
    this.end = move(this.end, (c) => new Int32Array(c))
    this.offsets = move(this.offsets, (c) => new Float64Array(c))
    this.segs = move(this.segs, (c) => new Float64Array(c))
    if (cap === this.bufs.length) {
      this.bufs.copyWithin(0, this.head, this.tail)
      this.bufs.fill(undefined, live, this.tail) // their buffers may go
    } else {
      const bufs = new Array<Buffer | undefined>(cap).fill(undefined)
      for (let k = this.head; k < this.tail; k++) bufs[k - this.head] = this.bufs[k]
      this.bufs = bufs
    }
    this.head = 0
    this.tail = live
  }
  /** Index of the first record at or after `offset` (offsets may have gaps after compaction). */
  indexOf(offset: number): number {
    let lo = this.head
    let hi = this.tail
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.offsets[mid]! < offset) lo = mid + 1
      else hi = mid
    }
    return lo - this.head
  }
  wake(): void {
    for (const w of this.waiters) w()
    this.waiters.clear()
  }
  /** Adds records (in offset order) where their offsets belong; offsets already held are kept. */
  merge(rs: Rec[]): void {
    if (this.length === 0 || rs[0]!.offset > this.offsetAt(this.length - 1)) {
      for (const r of rs) this.push(r.buf, r.at, r.end, r.offset, r.seg)
      return
    }
    const old = this.slice(0, this.length)
    const out: Rec[] = []
    let i = 0
    let j = 0
    while (i < old.length || j < rs.length) {
      const a = old[i]
      const b = rs[j]
      if (b === undefined || (a !== undefined && a.offset <= b.offset)) {
        out.push(a!)
        i++
        if (b !== undefined && a!.offset === b.offset) j++
      } else {
        out.push(b)
        j++
      }
    }
    this.replace(out)
  }
}

interface TopicState {
  name: string
  compacted: boolean
  partitions: Partition[]
}

/** [group, topic, partition, offset] */
type JOff = [string, string, number, number]
type Entry =
  | { k: 'topic'; name: string; partitions: number; compacted: boolean }
  | { k: 'delete'; names: string[] }
  /** Records packed (record-pack.ts) with their partitions and timestamps decided; `layout`
   * (not journaled) where each is, when the writer has read it already. */
  | { k: 'batch'; packed: Buffer | undefined; offs: JOff[]; layout?: PackedLayout }
  | {
      k: 'checkpoint'
      topics: { name: string; compacted: boolean; next: number[] }[]
      offs: JOff[]
      /** Compacted topics' retained records: [topic, partition, offset, key, value, headers, timestamp]. */
      recs: [string, number, number, string | null, Buffer | null, Record<string, Buffer>, number][]
    }

/** Settings of the embedded log. */
export interface EmbeddedLogOptions {
  /** Folder of the journal segments. */
  dir: string
  /** A segment is closed and a new one started past this size. */
  segmentBytes?: number
  /** Segments kept; older ones are deleted with the (non-compacted) records they hold, unless a
   * consumer group has not read them yet. */
  retainSegments?: number
  /** The most segments kept for lagging consumer groups; past it their oldest records go. */
  maxRetainSegments?: number
  /** fsync each group of appends (acks=all); off only for throwaway logs. */
  fsync?: boolean
  /** A sync starts no sooner than this long after the one before it (ms; default 0): appends
   * arriving meanwhile share it. Each fsync costs CPU (the kernel's, on this machine ~0.1 ms)
   * however little it writes; every produce, transaction and offset commit waits for one. */
  groupCommitMs?: number
  /** Records handed to a consumer at once, per partition. */
  maxBatchRecords?: number
  /** Partitions of a topic that a producer writes before anyone created it. */
  defaultPartitions?: number
  /** A consumer that was idle waits this long after a record arrives before it fetches, so
   * that records arriving one by one are handed over together (default 0). */
  fetchLingerMs?: number
  logger: Logger
}

/** A record as msgpack entries hold it: [topic, partition, key, value, headers, timestamp]. */
type RecTuple = [string, number, string | null, Buffer | null, Record<string, Buffer>, number]
const fromTuple = ([topic, partition, key, value, headers, timestamp]: RecTuple): OutRecord => ({
  topic,
  partition,
  key,
  value,
  headers,
  timestamp,
})

/** First byte of a binary batch entry; msgpack entries (maps) never start with it. */
const BINARY_BATCH = 0x01
const NO_RECORDS = packRecords([])

/**
 * Journal entries: batches (every produce, transaction and offset commit: the hot path) as
 * `0x01, u32 length, the records packed as for the producer thread (record-pack.ts), msgpack
 * of the offsets`; the rest, and batches written before this format (records as arrays), as
 * msgpack. msgpack of the records was ~10% of `fleetstream up`'s main thread (each value
 * Buffer copied into its output, then the whole payload into the frame); packed records are
 * written as they are, beside the frame's header.
 */
function entryCodec(): JournalCodec<Entry> {
  const msgpack = msgpackCodec<unknown>()
  return {
    encode(e) {
      if (e.k !== 'batch') return msgpack.encode(e)
      const recs = e.packed ?? NO_RECORDS
      const head = Buffer.allocUnsafe(5)
      head[0] = BINARY_BATCH
      head.writeUInt32LE(recs.length, 1)
      return [head, recs, ...msgpack.encode(e.offs)]
    },
    decode(payload) {
      if (payload[0] !== BINARY_BATCH) {
        const e = msgpack.decode(payload) as
          Exclude<Entry, { k: 'batch' }> | { k: 'batch'; recs: unknown[][]; offs: JOff[] }
        if (e.k !== 'batch') return e
        return { k: 'batch', packed: packRecords((e.recs as RecTuple[]).map(fromTuple)), offs: e.offs }
      }
      const n = payload.readUInt32LE(1)
      // A copy: a view would keep the whole segment file read on open alive for as long as any
      // one of its records is.
      return {
        k: 'batch',
        packed: Buffer.from(payload.subarray(5, 5 + n)),
        offs: msgpack.decode(payload.subarray(5 + n)) as JOff[],
      }
    },
  }
}

/**
 * The embedded, in-process event log behind the same interface as Kafka: topics of keyed
 * partitions (murmur2, as Kafka's default partitioner, so a device lands on the same partition
 * number on both), consumer groups with committed offsets and rebalancing between members,
 * and atomic transactions (records and consumer offsets in one journal entry). Every write is
 * durable (written and fsync'ed, appends grouped) before it is acknowledged or visible, and
 * survives a restart: the journal is read back on open. Records live in memory too, for as
 * many journal segments as are retained; compacted topics keep the latest record per key.
 */
export class EmbeddedEventLog implements EventLog {
  private readonly topics = new Map<string, TopicState>()
  private readonly committed = new Map<string, Map<string, number>>()
  private readonly journal: Journal<Entry>
  private readonly groups = new Map<string, Group>()
  private readonly txEpochs = new Map<string, number>()
  private rr = 0
  private rolling: Promise<void> | undefined
  private opened = false

  constructor(private readonly o: EmbeddedLogOptions) {
    this.journal = new Journal<Entry>(
      o.dir,
      {
        segmentBytes: o.segmentBytes ?? 64 * 1024 * 1024,
        fsync: o.fsync ?? true,
        groupCommitMs: o.groupCommitMs ?? 0,
      },
      entryCodec(),
    )
  }

  /** Reads the journal back (idempotent); every call below opens the log first. */
  open(): void {
    if (this.opened) return
    this.journal.open((e, seg) => this.apply(e, seg))
    this.opened = true
  }

  private topic(name: string): TopicState {
    const t = this.topics.get(name)
    if (!t) throw new LogError(`unknown topic ${name}`, { retriable: false })
    return t
  }

  private createTopic(name: string, partitions: number, compacted: boolean): void {
    if (this.topics.has(name)) return
    this.topics.set(name, {
      name,
      compacted,
      partitions: Array.from({ length: partitions }, () => new Partition()),
    })
  }

  /** Applies a journal entry to memory (on open, and after each durable append); where each
   * record went goes to `metas`, when asked (a producer's send: not a transaction's commit). */
  private apply(e: Entry, seg: number, metas?: RecordMeta[]): void {
    switch (e.k) {
      case 'topic':
        this.createTopic(e.name, e.partitions, e.compacted)
        return
      case 'delete':
        for (const n of e.names) this.topics.delete(n)
        return
      case 'checkpoint': {
        for (const t of e.topics) {
          this.createTopic(t.name, t.next.length, t.compacted)
          t.next.forEach((n, i) => {
            const p = this.topics.get(t.name)!.partitions[i]
            if (p && p.next < n) p.next = n
          })
        }
        // A checkpoint's records are older than the entries of the segments before it (it holds
        // what was live in the segments deleted at its roll): merged in by offset.
        const byPartition = new Map<Partition, Rec[]>()
        const packed = packRecords(e.recs.map(([t, p, , k, v, h, ts]) => fromTuple([t, p, k, v, h, ts])))
        const l = layoutOf(packed)
        e.recs.forEach(([t, pi, offset], i) => {
          const p = this.topics.get(t)?.partitions[pi]
          if (!p) return
          let rs = byPartition.get(p)
          if (!rs) byPartition.set(p, (rs = []))
          rs.push({ buf: packed, at: l.start[i]!, end: l.end[i]!, offset, seg })
        })
        for (const [p, rs] of byPartition) p.merge(rs)
        for (const [g, t, p, off] of e.offs) this.setCommitted(g, t, p, off)
        return
      }
      case 'batch': {
        const buf = e.packed
        const l = buf && (e.layout ?? layoutOf(buf))
        for (let i = 0; l && i < l.count; i++) {
          const t = l.topics[l.topic[i]!]!
          const at = l.start[i]!
          const pi = buf.readInt32LE(at + 2)
          const p = this.topics.get(t)?.partitions[pi]
          if (!p) continue
          const offset = p.next++
          p.push(buf, at, l.end[i]!, offset, seg)
          // Its waiters go on once this entry is applied (they resume in a later microtask).
          if (this.opened && p.waiters.size > 0) p.wake()
          metas?.push({ topic: t, partition: pi, offset: String(offset) })
        }
        for (const [g, t, p, off] of e.offs) this.setCommitted(g, t, p, off)
        return
      }
    }
  }

  private setCommitted(group: string, topic: string, partition: number, offset: number): void {
    let g = this.committed.get(group)
    if (!g) this.committed.set(group, (g = new Map()))
    g.set(`${topic}/${partition}`, offset)
  }

  committedOffset(group: string, topic: string, partition: number): number | undefined {
    return this.committed.get(group)?.get(`${topic}/${partition}`)
  }

  /** Appends an entry durably, then applies it; rolls the segment when it is full. */
  private async write(e: Entry, withMetas = false): Promise<RecordMeta[]> {
    this.open()
    if (this.rolling) await this.rolling
    await this.journal.append(e)
    const metas: RecordMeta[] = []
    this.apply(e, this.journal.current(), withMetas ? metas : undefined)
    if (this.journal.full() && !this.rolling)
      this.rolling = this.roll().finally(() => (this.rolling = undefined))
    return metas
  }

  /**
   * Starts a new segment with a checkpoint, compacts compacted topics, drops old segments. The
   * checkpoint holds the topics' end offsets, every committed offset, and of the compacted
   * topics only the live records of the segments this roll deletes: the others are still in
   * the segments kept (read back on open, in order, with the checkpoints). Writing every live
   * record at each roll (10-13 MB at 10,000 devices) held all writes for 80-700 ms a roll.
   */
  private async roll(): Promise<void> {
    // Entries already on their way (appended before this roll began; later writes wait for it)
    // go to the old segment: they are applied before the checkpoint is taken, or it would
    // describe memory from before them, and on a restart set their committed offsets back and,
    // once their segment is deleted, lose their compacted records.
    await this.journal.drain()
    const topics = [...this.topics.values()]
    const next = this.journal.current() + 1
    const oldest = this.keepFrom([...this.journal.segments(), next], topics)
    /** Live records of the segments this roll deletes, by partition and index: they are in
     * the checkpoint, so in the new segment. */
    const moved: [Partition, number][] = []
    const recs: Extract<Entry, { k: 'checkpoint' }>['recs'] = []
    for (const t of topics) {
      if (!t.compacted) continue
      t.partitions.forEach((p, i) => {
        const latest = new Map<string | null, Rec>()
        for (const r of p.slice(0, p.length)) latest.set(keyOf(r), r)
        const live = [...latest.values()].filter((r) => !tombstone(r)).sort((a, b) => a.offset - b.offset)
        // The live records move to a buffer of their own: each would otherwise keep the whole
        // buffer it was written in (a transaction's, mostly of other topics' records) alive.
        rehome(live)
        p.replace(live)
        live.forEach((r, at) => {
          if (r.seg >= oldest) return
          moved.push([p, at])
          const x = readInRecord(r, t.name, r.offset)
          recs.push([t.name, i, r.offset, x.key, x.value, x.headers, x.timestamp])
        })
      })
    }
    const offs: JOff[] = []
    for (const [g, m] of this.committed)
      for (const [tp, off] of m) {
        const cut = tp.lastIndexOf('/')
        offs.push([g, tp.slice(0, cut), Number(tp.slice(cut + 1)), off])
      }
    const seg = await this.journal.roll({
      k: 'checkpoint',
      topics: topics.map((t) => ({
        name: t.name,
        compacted: t.compacted,
        next: t.partitions.map((p) => p.next),
      })),
      offs,
      recs,
    })
    for (const [p, at] of moved) p.setSeg(at, seg)
    for (const s of this.journal.segments())
      if (s < oldest)
        this.journal.remove(s).catch((err: Error) =>
          this.o.logger.warn('embedded log: an old segment could not be deleted', {
            segment: s,
            error: err.message,
          }),
        )
    for (const t of topics)
      if (!t.compacted)
        for (const p of t.partitions) {
          let i = 0
          while (i < p.length && p.segAt(i) < oldest) i++
          p.drop(i)
        }
  }

  /** The oldest segment to keep once a roll has started segment `segs`' last. */
  private keepFrom(segs: number[], topics: TopicState[]): number {
    const keep = this.o.retainSegments ?? 4
    const cap = Math.max(keep, this.o.maxRetainSegments ?? 64)
    let oldest = segs[Math.max(0, segs.length - keep)]!
    // Records a consumer group has not committed yet are kept (up to `maxRetainSegments`), so a
    // lagging sink or job never loses what it has still to read.
    for (const t of topics) {
      if (t.compacted) continue
      t.partitions.forEach((p, i) => {
        let min = Infinity
        for (const g of this.committed.values()) {
          const off = g.get(`${t.name}/${i}`)
          if (off !== undefined && off < min) min = off
        }
        const at = p.indexOf(min)
        if (at < p.length) oldest = Math.min(oldest, p.segAt(at))
      })
    }
    const floor = segs[Math.max(0, segs.length - cap)]!
    if (oldest < floor) {
      this.o.logger.warn(
        'embedded log: retention reached maxRetainSegments; unread records of lagging groups are dropped',
        {
          maxRetainSegments: cap,
        },
      )
      oldest = floor
    }
    return oldest
  }

  /**
   * Decides, in place, the partition (murmur2 of the key bytes, as Kafka's default partitioner;
   * round-robin without a key) and the timestamp (now) of each packed record that has none,
   * creating the topics it names that do not exist yet; refuses a partition the topic lacks.
   */
  private async prepare(packed: Buffer): Promise<PackedLayout> {
    const l = layoutOf(packed)
    for (const name of l.topics)
      if (!this.topics.has(name))
        await this.ensure([{ name, partitions: this.o.defaultPartitions ?? 6, replicationFactor: 1 }])
    const now = Date.now()
    for (let i = 0; i < l.count; i++) {
      const t = this.topic(l.topics[l.topic[i]!]!)
      const n = t.partitions.length
      const at = l.start[i]!
      const partition = packed.readInt32LE(at + 2)
      if (partition === -1) {
        const [ks, ke] = keyRange({ buf: packed, at, end: l.end[i]! })
        packed.writeInt32LE(ks <= ke ? toPositive(murmur2(packed, ks, ke)) % n : this.rr++ % n, at + 2)
      } else if (partition < 0 || partition >= n)
        throw new LogError(`topic ${t.name} has no partition ${partition}`, { retriable: false })
      if (Number.isNaN(packed.readDoubleLE(at + 6))) packed.writeDoubleLE(now, at + 6)
    }
    return l
  }

  /** Writes packed records (and offsets) as one journal entry: all or none. */
  private async writePacked(
    packed: Buffer | undefined,
    offs: JOff[],
    withMetas = false,
  ): Promise<RecordMeta[]> {
    const layout = packed && (await this.prepare(packed))
    return this.write({ k: 'batch', packed, offs, layout }, withMetas)
  }

  private async ensure(specs: TopicSpec[]): Promise<string[]> {
    this.open()
    const created: string[] = []
    for (const s of specs) {
      if (this.topics.has(s.name)) continue
      await this.write({
        k: 'topic',
        name: s.name,
        partitions: s.partitions,
        compacted: s.compacted ?? false,
      })
      created.push(s.name)
    }
    return created
  }

  async producer(): Promise<Producer> {
    this.open()
    return {
      send: async (records) => (records.length ? this.writePacked(packRecords(records), [], true) : []),
      sendPacked: (packed: Buffer) => this.writePacked(packed, [], true),
      close: async () => {},
    } as Producer
  }

  async transactionalProducer(transactionalId: string): Promise<TransactionalProducer> {
    this.open()
    // A new producer with the same id fences the old one (as Kafka's epochs do).
    const epoch = (this.txEpochs.get(transactionalId) ?? 0) + 1
    this.txEpochs.set(transactionalId, epoch)
    const fenced = () => this.txEpochs.get(transactionalId) !== epoch
    return {
      begin: async (): Promise<Transaction> => {
        const recs: OutRecord[] = []
        const packs: Buffer[] = []
        const offs: JOff[] = []
        let done = false
        const check = () => {
          if (done) throw new LogError('the transaction is already finished', { retriable: false })
          if (fenced())
            throw new LogError(`producer ${transactionalId} was fenced by a newer instance`, {
              retriable: false,
            })
        }
        return <Transaction>{
          send: async (rs: OutRecord[]) => {
            check()
            for (const r of rs) recs.push(r)
          },
          sendPacked: async (packed: Buffer) => {
            check()
            packs.push(packed)
          },
          sendOffsets: async (groupId: string, offsets: PartitionOffset[]) => {
            check()
            for (const o of offsets) offs.push([groupId, o.topic, o.partition, Number(o.offset)])
          },
          commit: async () => {
            check()
            done = true
            // Records sent packed (from a worker thread) are written as they came, if alone.
            const packed =
              packs.length === 1 && recs.length === 0
                ? packs[0]
                : recs.length + packs.length > 0
                  ? packRecords([...recs, ...packs.flatMap((b) => unpackRecords(b))])
                  : undefined
            await this.writePacked(packed, offs)
          },
          abort: async () => {
            done = true
          },
        }
      },
      close: async () => {},
    }
  }

  async consumer(opts: ConsumerOptions): Promise<Consumer> {
    this.open()
    let group = this.groups.get(opts.groupId)
    if (!group) this.groups.set(opts.groupId, (group = new Group(this, opts.groupId)))
    return group.join(opts)
  }

  /** Records of a partition from `offset` on, at most `max`. */
  fetch(topic: string, partition: number, offset: number, max: number): Rec[] {
    const p = this.topics.get(topic)?.partitions[partition]
    if (!p) return []
    const i = p.indexOf(offset)
    return p.slice(i, i + max)
  }

  /** Calls `wake` once when any of `partitions` gets a record; returns a function that
   * withdraws it (nothing stays registered once the caller has stopped waiting). */
  onRecord(partitions: [string, number][], wake: () => void): () => void {
    const sets = partitions.flatMap(([t, p]) => {
      const w = this.topics.get(t)?.partitions[p]?.waiters
      return w ? [w] : []
    })
    for (const w of sets) w.add(wake)
    return () => {
      for (const w of sets) w.delete(wake)
    }
  }

  partitionCountOf(topic: string): number {
    this.open()
    return this.topics.get(topic)?.partitions.length ?? 0
  }

  endOffset(topic: string, partition: number): number {
    return this.topics.get(topic)?.partitions[partition]?.next ?? 0
  }

  commitOffsets(groupId: string, offsets: PartitionOffset[]): Promise<unknown> {
    return this.write({
      k: 'batch',
      packed: undefined,
      offs: offsets.map((o) => [groupId, o.topic, o.partition, Number(o.offset)]),
    })
  }

  get fetchLingerMs(): number {
    return this.o.fetchLingerMs ?? 0
  }

  get maxBatch(): number {
    return this.o.maxBatchRecords ?? 2000
  }

  get logger(): Logger {
    return this.o.logger
  }

  async readPartition(topic: string, partition: number, onRecord: (r: InRecord) => void): Promise<void> {
    this.open()
    for (const r of this.fetch(topic, partition, 0, Number.MAX_SAFE_INTEGER))
      onRecord(readInRecord(r, topic, r.offset))
  }

  async readTopic(topic: string, onRecord: (r: InRecord) => void): Promise<void> {
    this.open()
    for (let p = 0; p < this.partitionCountOf(topic); p++) await this.readPartition(topic, p, onRecord)
  }

  async admin(): Promise<LogAdmin> {
    this.open()
    return {
      ensureTopics: (specs) => this.ensure(specs),
      listTopics: async () => [...this.topics.keys()],
      partitionCount: async (t) => this.topic(t).partitions.length,
      deleteTopics: async (names) => void (await this.write({ k: 'delete', names })),
      endOffsets: async (t) => new Map(this.topic(t).partitions.map((p, i) => [i, String(p.next)])),
      committedOffsets: async (g, t) =>
        new Map(this.topic(t).partitions.map((_, i) => [i, String(this.committedOffset(g, t, i) ?? -1)])),
      close: async () => {},
    }
  }

  async close(): Promise<void> {
    for (const g of this.groups.values()) await g.closeAll()
    if (this.rolling) await this.rolling
    await this.journal.close()
  }
}

/** The key of a stored record (compaction keeps the latest record per key). */
function keyOf(r: Rec): string | null {
  const [s, e] = keyRange(r)
  return s <= e ? r.buf.toString('utf8', s, e) : null
}

/** Whether a stored record is a tombstone (a null value: compaction drops its key). */
function tombstone(r: Rec): boolean {
  const [s, e] = keyRange(r)
  return r.buf.readInt32LE(s <= e ? e : r.at + 18) < 0
}

/** Moves records into one new buffer of their own, bytes as they are. */
function rehome(recs: Rec[]): void {
  let size = 0
  for (const r of recs) size += r.end - r.at
  const buf = Buffer.allocUnsafeSlow(size)
  let at = 0
  for (const r of recs) {
    const n = r.buf.copy(buf, at, r.at, r.end)
    r.buf = buf
    r.at = at
    r.end = at += n
  }
}

/**
 * A batch handed to a consumer: its records are read from their packed bytes when the handler
 * first asks for them, and handed to a worker thread (`pack`) as those bytes, copied as they
 * are, without being read at all.
 */
class EmbeddedBatch implements RecordBatch, PackableBatch {
  private read: InRecord[] | undefined

  constructor(
    readonly topic: string,
    readonly partition: number,
    /** Undefined once packed: the records went to a worker thread as bytes. */
    private recs: Rec[] | undefined,
  ) {}

  get records(): InRecord[] {
    if (this.read) return this.read
    if (!this.recs)
      throw new LogError('this batch was handed over packed: its records are not here', { retriable: false })
    return (this.read = this.recs.map((r) => readInRecord(r, this.topic, r.offset)))
  }

  /** The records as bytes for a worker thread; the batch lets go of them (it is held until
   * the worker is done with it). */
  pack(): { packed: ArrayBuffer; offsets: Float64Array } {
    const recs = this.recs
    if (!recs) throw new LogError('this batch was handed over packed already', { retriable: false })
    this.recs = undefined
    const offsets = new Float64Array(recs.length)
    for (let i = 0; i < recs.length; i++) offsets[i] = recs[i]!.offset
    return { packed: packRefs(this.topic, recs).buffer as ArrayBuffer, offsets }
  }
}

/** One member of a group: its fetch loop over the partitions the group gave it. */
class Member {
  assignment = new Map<string, number[]>()
  /** The assignment as a list, with each partition's `topic/partition` key, built once per
   * assignment: the fetch loop walks it on every wake-up (a record, a finished batch). `since`:
   * when the partition's unfetched records began to linger (0: they do not). */
  private slots: { t: string; p: number; tp: string; since: number }[] = []
  private positions = new Map<string, number>()
  private readonly paused = new Set<string>()
  private readonly inFlight = new Map<string, Promise<void>>()
  private handler: ((b: RecordBatch, ctx: BatchContext) => Promise<void>) | undefined
  private stopped = false
  private holding = false
  private wakeLoop: (() => void) | undefined
  private loop: Promise<void> | undefined
  private failures = new Map<string, number>()

  constructor(
    readonly id: number,
    readonly opts: ConsumerOptions,
    private readonly log: EmbeddedEventLog,
    private readonly group: Group,
  ) {}

  /** Stops handing out batches and waits for the ones in flight (before a rebalance). */
  async hold(): Promise<void> {
    this.holding = true
    this.wakeLoop?.()
    await Promise.all(this.inFlight.values())
  }

  /** Takes a new assignment; positions start at the committed offsets. */
  assign(a: Map<string, number[]>): void {
    this.assignment = a
    this.positions = new Map()
    this.slots = []
    for (const [t, ps] of a)
      for (const p of ps) {
        const c = this.log.committedOffset(this.opts.groupId, t, p)
        const tp = `${t}/${p}`
        this.positions.set(tp, c ?? (this.opts.fromBeginning ? 0 : this.log.endOffset(t, p)))
        this.slots.push({ t, p, tp, since: 0 })
      }
    this.holding = false
    // As with Kafka, the owner hears of an assignment once it runs, before the first batch.
    if (this.handler) this.opts.onAssign?.(a, false)
    this.wakeLoop?.()
  }

  run(handler: (b: RecordBatch, ctx: BatchContext) => Promise<void>): void {
    if (!this.handler) this.opts.onAssign?.(this.assignment, false)
    this.handler = handler
    this.loop ??= this.fetchLoop()
  }

  private async fetchLoop(): Promise<void> {
    const ctx: BatchContext = { commit: (o) => this.commit(o), heartbeat: async () => {} }
    const limit = this.opts.concurrency ?? 1
    const linger = this.log.fetchLingerMs
    while (!this.stopped) {
      let started = false
      /** The earliest time a lingering partition is due (Infinity: none lingers). */
      let due = Number.POSITIVE_INFINITY
      if (!this.holding && this.handler) {
        const now = linger > 0 ? Date.now() : 0
        for (const slot of this.slots) {
          const { t, p, tp } = slot
          if (this.inFlight.size >= limit) break
          if (this.inFlight.has(tp) || this.paused.has(tp)) continue
          const pos = this.positions.get(tp) ?? 0
          if (linger > 0) {
            // Per partition, as Kafka's fetch.min.bytes with fetch.max.wait.ms: fewer records than
            // a full batch wait up to the linger for more, from when the first of them was seen.
            const waiting = this.log.endOffset(t, p) - pos
            if (waiting <= 0) {
              slot.since = 0
              continue
            }
            if (waiting < this.log.maxBatch) {
              if (slot.since === 0) slot.since = now
              if (now - slot.since < linger) {
                due = Math.min(due, slot.since + linger)
                continue
              }
            }
            slot.since = 0
          }
          const recs = this.log.fetch(t, p, pos, this.log.maxBatch)
          if (recs.length === 0) continue
          started = true
          // Only the next position is kept for after the batch, not its records (a worker's
          // batch can take a second or more: records kept that long are promoted, then marked).
          const after = recs[recs.length - 1]!.offset + 1
          const run = this.handler(new EmbeddedBatch(t, p, recs), ctx).then(
            () => {
              this.failures.delete(tp)
              if (this.positions.has(tp)) this.positions.set(tp, after)
            },
            async (err: unknown) => {
              // As Kafka clients do after a failed batch: start again from the committed offset.
              const n = (this.failures.get(tp) ?? 0) + 1
              this.failures.set(tp, n)
              this.log.logger.warn('embedded log: batch handler failed; retrying from the committed offset', {
                group: this.opts.groupId,
                partition: tp,
                attempt: n,
                error: (err as Error).message,
              })
              await new Promise((r) => setTimeout(r, Math.min(5_000, 100 * 2 ** Math.min(n, 6))))
              if (this.positions.has(tp)) {
                const c = this.log.committedOffset(this.opts.groupId, t, p)
                this.positions.set(tp, c ?? (this.opts.fromBeginning ? 0 : pos))
              }
            },
          )
          const tracked = run.finally(() => {
            this.inFlight.delete(tp)
            this.wakeLoop?.()
          })
          this.inFlight.set(tp, tracked)
        }
      }
      if (started) continue
      // Nothing to hand out. Partitions lingering: wait until the first is due (or a finished
      // batch, a resume or a rebalance); records arriving meanwhile join them. Otherwise wait for
      // a record too. One waiter for all assigned partitions, withdrawn (with its timer)
      // whatever ends the wait.
      await new Promise<void>((resolve) => {
        let withdraw = () => {}
        const end = () => {
          clearTimeout(timer)
          withdraw()
          resolve()
        }
        const lingering = due !== Number.POSITIVE_INFINITY
        const timer = setTimeout(end, lingering ? Math.max(1, due - Date.now()) : 1_000).unref()
        this.wakeLoop = end
        if (!lingering)
          withdraw = this.log.onRecord(
            this.slots.map(({ t, p }): [string, number] => [t, p]),
            end,
          )
      })
      this.wakeLoop = undefined
    }
  }

  commit(offsets: PartitionOffset[]): Promise<void> {
    return this.log.commitOffsets(this.opts.groupId, offsets).then(() => undefined)
  }

  pause(topic: string, partitions: number[]): void {
    for (const p of partitions) this.paused.add(`${topic}/${p}`)
  }

  resume(topic: string, partitions: number[]): void {
    for (const p of partitions) this.paused.delete(`${topic}/${p}`)
    this.wakeLoop?.()
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.wakeLoop?.()
    await Promise.all(this.inFlight.values())
    await this.loop
  }

  asConsumer(): Consumer {
    return {
      run: async (handler) => this.run(handler),
      commit: (o) => this.commit(o),
      assignment: () => this.assignment,
      // One process: a rebalance waits for the batches in flight (hold), so no member can
      // commit for partitions it lost; there is nothing to fence with generations.
      member: () => undefined,
      pause: (t, ps) => this.pause(t, ps),
      resume: (t, ps) => this.resume(t, ps),
      close: () => this.group.leave(this),
    }
  }
}

/** A consumer group: members share the partitions of the topics they subscribe to. */
class Group {
  private readonly members: Member[] = []
  private nextId = 0
  private rebalancing: Promise<void> = Promise.resolve()

  constructor(
    private readonly log: EmbeddedEventLog,
    readonly id: string,
  ) {}

  async join(opts: ConsumerOptions): Promise<Consumer> {
    for (const t of opts.topics)
      if (this.log.partitionCountOf(t) === 0)
        throw new LogError(`cannot subscribe group ${opts.groupId}: unknown topic ${t}`, { retriable: false })
    const m = new Member(this.nextId++, opts, this.log, this)
    this.members.push(m)
    await this.rebalance()
    return m.asConsumer()
  }

  async leave(m: Member): Promise<void> {
    const i = this.members.indexOf(m)
    if (i < 0) return
    this.members.splice(i, 1)
    await m.stop()
    await this.rebalance()
  }

  /** Every member finishes its batches in flight, then partitions are dealt round-robin. */
  private rebalance(): Promise<void> {
    this.rebalancing = this.rebalancing.then(async () => {
      await Promise.all(this.members.map((m) => m.hold()))
      const plan = new Map<Member, Map<string, number[]>>(this.members.map((m) => [m, new Map()]))
      const topics = [...new Set(this.members.flatMap((m) => m.opts.topics))].sort()
      let turn = 0
      for (const t of topics) {
        const subscribers = this.members.filter((m) => m.opts.topics.includes(t))
        for (let p = 0; p < this.log.partitionCountOf(t); p++) {
          const m = subscribers[turn++ % subscribers.length]!
          const a = plan.get(m)!
          a.set(t, [...(a.get(t) ?? []), p])
        }
      }
      for (const [m, a] of plan) m.assign(a)
    })
    return this.rebalancing
  }

  async closeAll(): Promise<void> {
    for (const m of [...this.members]) await m.stop()
    this.members.length = 0
  }
}
