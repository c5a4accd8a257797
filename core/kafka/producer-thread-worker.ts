/**
 * The producer thread (see producer-thread.ts): one idempotent kafkajs producer, fed packed
 * batches by the main thread, answering with where each record landed or why it failed.
 */
import { parentPort, workerData } from 'node:worker_threads'
import type { KafkaConfig } from '../config/schema'
import { createLogger } from '../logging/logger'
import { ToMainThread } from '../logging/thread-transport'
import { KafkaEventLog } from './kafkajs-log'
import type { Producer } from './log'
import { unpackRecords } from './record-pack'
import type { ToThread, FromThread } from './producer-thread'

const port = parentPort!
const { kafka, debug } = workerData as { kafka: KafkaConfig; debug: boolean }
const post = (m: FromThread, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer)

// Log lines go to the main thread's logger (its transports, levels and redaction).
const logger = createLogger({ level: debug ? 'debug' : 'info', transports: [new ToMainThread(post)] })
const log = new KafkaEventLog(kafka, logger)
let producer: Producer | undefined

port.on('message', (m: ToThread) => {
  if (m.type === 'send') {
    let records
    try {
      records = unpackRecords(Buffer.from(m.packed))
    } catch (err) {
      post({ type: 'failed', id: m.id, message: (err as Error).message, retriable: false })
      return
    }
    producer!.send(records).then(
      (metas) => {
        const partitions = new Int32Array(metas.length)
        const offsets = new BigInt64Array(metas.length)
        metas.forEach((meta, i) => {
          partitions[i] = meta.partition
          offsets[i] = BigInt(meta.offset)
        })
        post({ type: 'sent', id: m.id, partitions, offsets }, [partitions.buffer, offsets.buffer])
      },
      (err: unknown) => {
        const e = err as { message?: string; retriable?: boolean }
        post({ type: 'failed', id: m.id, message: String(e.message ?? err), retriable: e.retriable === true })
      },
    )
  } else if (m.type === 'close') {
    const closing = producer ? producer.close() : Promise.resolve()
    void closing
      .catch(() => undefined)
      .then(() => log.close())
      .catch(() => undefined)
      .then(() => port.close())
  }
})

log.producer().then(
  (p) => {
    producer = p
    post({ type: 'ready' })
  },
  (err: unknown) => {
    const e = err as { message?: string; retriable?: boolean }
    post({ type: 'failed', id: -1, message: String(e.message ?? err), retriable: e.retriable === true })
  },
)
