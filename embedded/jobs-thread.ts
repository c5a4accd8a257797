/**
 * The stream jobs of `up` on a thread of their own. At 15,000 readings/s the main thread was
 * 80–95% busy, and the jobs (decoding, windows, rules, their transactions) were about a third
 * of it: any burst of theirs — a minute's rollups emitted at once — queued the bridge's
 * acknowledgements and the sink's writes behind it. On a worker thread they run beside the
 * bridge and the embedded log instead of in turn with them. The log stays on the main thread
 * (the bridge appends to it); the jobs reach it through a ThreadEventLog (log-thread.ts). On
 * Kafka the thread has a client of its own.
 * By default `up` runs two such threads (`up.jobsThreads`, embedded/roles.ts THREAD_ROLES): enrich
 * and the sink on one, rollup and rules on the other. On one thread a reading waited for its
 * enrichment behind the other jobs' batches: a worker's event loop runs one batch at a time,
 * while the OS shares the cores between threads in slices of milliseconds.
 * Their metrics live in the worker's registries, read on request.
 */
import { startWorker } from '../core/threads'
import { AggregatorRegistry, Registry } from 'prom-client'
import { serveEventLog } from '../core/kafka/log-thread'
import type { EventLog } from '../core/kafka/log'
import type { Logger } from '../core/logging/logger'
import type { ThreadLogLine } from '../core/logging/thread-transport'
import type { UpRoleConfig } from './config'
import type { UpRole } from './roles'

/** Messages from the jobs thread (besides the log's own). */
export type FromJobs =
  | ThreadLogLine
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'fatal'; job: string }
  | { type: 'metrics'; id: number; json: object[] }
  | { type: 'closed' }

/** Messages to the jobs thread (besides the log's own). */
export type ToJobs = { type: 'metrics'; id: number } | { type: 'close' }

/** A jobs thread as `up` holds it. */
export interface JobsThread {
  /** Its roles' metrics as they are now (the worker's registries, as JSON; [] when it does not answer). */
  metrics(): Promise<object[]>
  close(): Promise<void>
}

/** The metrics of several jobs threads in one registry (the same metric of two threads is summed). */
export async function threadsRegistry(threads: JobsThread[]): Promise<Registry> {
  return AggregatorRegistry.aggregate((await Promise.all(threads.map((t) => t.metrics()))) as never)
}

/**
 * Starts `roles` (stream jobs, the sink) on a worker thread, over `log`; resolves once they
 * run. `onFatal`: a job stopped for good (its consumer crashed), or the thread died.
 */
export async function startJobsThread(
  cfg: UpRoleConfig,
  log: EventLog,
  logger: Logger,
  onFatal: (job: string) => void,
  roles: UpRole[],
): Promise<JobsThread> {
  const worker = startWorker(__filename, 'jobs-thread-worker', { cfg, roles })
  const served = cfg.up.kafka ? { stop: async () => {} } : serveEventLog(log, worker)
  const asked = new Map<number, (json: object[]) => void>()
  let nextId = 1
  let closing = false
  let onClosed = () => {}
  const post = (m: ToJobs) => worker.postMessage(m)

  const ready = new Promise<void>((resolve, reject) => {
    worker.on('message', (m: FromJobs & { lt?: string }) => {
      if (m.lt !== undefined) return // the log's own
      if (m.type === 'log') logger.log(m.level, m.message, m.fields)
      else if (m.type === 'ready') resolve()
      else if (m.type === 'failed') reject(new Error(`the jobs thread could not start: ${m.message}`))
      else if (m.type === 'fatal') onFatal(m.job)
      else if (m.type === 'metrics') {
        asked.get(m.id)?.(m.json)
        asked.delete(m.id)
      } else if (m.type === 'closed') onClosed()
    })
    worker.on('error', (err) => {
      logger.error('the jobs thread failed', { error: err.message })
      reject(err)
    })
    worker.on('exit', (code) => {
      void served.stop()
      if (closing) return
      reject(new Error(`the jobs thread exited (code ${code})`))
      onFatal('jobs thread')
    })
  })
  try {
    await ready
  } catch (err) {
    closing = true
    await worker.terminate()
    throw err
  }

  return {
    metrics: () =>
      new Promise<object[]>((resolve) => {
        // A thread that is stopping (or too busy to answer in 5 s) shows no metrics this time.
        if (closing) return resolve([])
        const id = nextId++
        const timer = setTimeout(() => {
          asked.delete(id)
          resolve([])
        }, 5_000)
        asked.set(id, (json) => {
          clearTimeout(timer)
          resolve(json)
        })
        post({ type: 'metrics', id })
      }),
    async close() {
      if (closing) return
      closing = true
      const closed = new Promise<void>((resolve) => {
        onClosed = resolve
        worker.once('exit', () => resolve())
      })
      post({ type: 'close' })
      // The jobs close within seconds; a thread that does not is stopped all the same.
      await Promise.race([closed, new Promise((r) => setTimeout(r, 30_000).unref())])
      await served.stop()
      await worker.terminate()
    },
  }
}
