/**
 * A Kafka producer on its own thread. Encoding record batches, partitioning and the produce
 * round trips take about a fifth of the bridge's CPU per message (profile in the README);
 * on a thread of their own they run beside the MQTT and decoding work instead of in turn
 * with it. The main thread packs each batch into one buffer (record-pack.ts) and transfers
 * it; `send` resolves with the same record metadata, and fails the same way (LogError), as
 * the in-thread producer of KafkaEventLog.
 */
import type { Worker } from 'node:worker_threads'
import { startWorker } from '../threads'
import type { KafkaConfig } from '../config/schema'
import { LogError } from '../errors'
import type { Logger } from '../logging/logger'
import type { ThreadLogLine } from '../logging/thread-transport'
import type { OutRecord, Producer, RecordMeta } from './log'
import { packRecords } from './record-pack'

/** Messages to the producer thread. */
export type ToThread = { type: 'send'; id: number; packed: ArrayBuffer } | { type: 'close' }

/** Messages from the producer thread. */
export type FromThread =
  | { type: 'ready' }
  | { type: 'sent'; id: number; partitions: Int32Array; offsets: BigInt64Array }
  | { type: 'failed'; id: number; message: string; retriable: boolean }
  | ThreadLogLine

interface Pending {
  records: readonly OutRecord[]
  resolve: (m: RecordMeta[]) => void
  reject: (e: unknown) => void
}

/** A producer on its own thread. */
export interface ThreadedProducer extends Producer {
  /** Stops the thread at once, as a crash would: sends in flight fail (tests use it). */
  kill(): void
}

/**
 * Connects an idempotent acks=all producer on a worker thread. A thread that dies fails the
 * sends in flight with a retriable LogError; the next send starts a new one.
 */
export async function threadedProducer(kafka: KafkaConfig, logger: Logger): Promise<ThreadedProducer> {
  const log = logger.child({ component: 'core.kafka.thread' })
  const workerData = { kafka, debug: logger.isDebugEnabled() }
  const pending = new Map<number, Pending>()
  let nextId = 0
  let closed = false
  let current: Promise<Worker> | undefined
  let live: Worker | undefined

  const failAll = (err: LogError) => {
    for (const p of pending.values()) p.reject(err)
    pending.clear()
  }

  const start = (): Promise<Worker> =>
    new Promise<Worker>((resolve, reject) => {
      const w = startWorker(__filename, 'producer-thread-worker', workerData)
      let ready = false
      let gone = false
      const died = (why: string) => {
        if (gone) return
        gone = true
        current = undefined
        if (live === w) live = undefined
        const err = new LogError(`producer thread stopped: ${why}`, { retriable: true })
        if (!ready) reject(err)
        else if (!closed) log.warn('producer thread stopped; the next send starts a new one', { error: why })
        failAll(err)
      }
      w.on('message', (m: FromThread) => {
        if (m.type === 'ready') {
          ready = true
          live = w
          resolve(w)
        } else if (m.type === 'sent') {
          const p = pending.get(m.id)
          if (!p) return
          pending.delete(m.id)
          p.resolve(
            p.records.map((r, i) => ({
              topic: r.topic,
              partition: m.partitions[i]!,
              offset: String(m.offsets[i]!),
            })),
          )
        } else if (m.type === 'failed') {
          const err = new LogError(m.message, { retriable: m.retriable })
          if (m.id === -1) {
            // The producer could not connect: this thread is of no use.
            gone = true
            current = undefined
            reject(err)
            void w.terminate()
            return
          }
          const p = pending.get(m.id)
          if (!p) return
          pending.delete(m.id)
          p.reject(err)
        } else if (m.type === 'log') {
          log.log(m.level, m.message, m.fields)
        }
      })
      w.on('error', (err) => died(err.message))
      w.on('exit', (code) => died(`exit code ${code}`))
    })

  const worker = (): Promise<Worker> => (current ??= start())
  await worker()

  return {
    send: async (records) => {
      if (closed) throw new LogError('producer is closed', { retriable: false })
      if (records.length === 0) return []
      const w = await worker()
      const packed = packRecords(records)
      const id = nextId++
      return new Promise<RecordMeta[]>((resolve, reject) => {
        pending.set(id, { records, resolve, reject })
        const msg: ToThread = { type: 'send', id, packed: packed.buffer as ArrayBuffer }
        w.postMessage(msg, [packed.buffer as ArrayBuffer])
      })
    },
    kill: () => void live?.terminate(),
    close: async () => {
      if (closed) return
      closed = true
      const w = await current?.catch(() => undefined)
      if (!w) return
      const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()))
      w.postMessage({ type: 'close' } satisfies ToThread)
      // The thread disconnects its producer and ends; one that hangs is stopped.
      const timer = setTimeout(() => void w.terminate(), 10_000)
      await exited
      clearTimeout(timer)
    },
  }
}
