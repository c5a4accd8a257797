/**
 * A jobs thread (see jobs-thread.ts): the roles it was given among the enrich, rollup and rules
 * jobs and the sink, each as `up` would start it on the main thread, over the main thread's
 * embedded log or a Kafka client of its own.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { Registry } from 'prom-client'
import { SinkMetrics } from '../consumers/sinks/metrics'
import { createSchemaRegistry } from '../core/envelope/telemetry'
import { KafkaEventLog } from '../core/kafka/kafkajs-log'
import type { EventLog } from '../core/kafka/log'
import { ThreadEventLog } from '../core/kafka/log-thread'
import { createLogger } from '../core/logging/logger'
import { ToMainThread } from '../core/logging/thread-transport'
import { lowerThreadPriority } from '../core/threads'
import { JobMetrics } from '../stream-jobs/runtime/metrics'
import type { UpRoleConfig } from './config'
import type { FromJobs, ToJobs } from './jobs-thread'
import { offRowPath, startUpJobs, startUpSink, type Started, type UpRole } from './roles'

const port = parentPort!
const { cfg, roles } = workerData as { cfg: UpRoleConfig; roles: UpRole[] }
const post = (m: FromJobs) => port.postMessage(m)
const logger = createLogger({ ...cfg.log, transports: [new ToMainThread(post)] })
// On Kafka the thread has its own client; on the embedded log, the main thread's log.
const log: EventLog = cfg.up.kafka ? new KafkaEventLog(cfg.kafka, logger) : new ThreadEventLog(port)
const jobMetrics = new JobMetrics()
const sinkMetrics = new SinkMetrics()
const running: Started[] = []

async function close(): Promise<void> {
  for (const r of running.reverse())
    await r.close().catch((err: unknown) => logger.error('stop failed', { error: (err as Error).message }))
  running.length = 0
  post({ type: 'closed' })
  await log.close()
  port.close()
}

port.on('message', (m: ToJobs & { lt?: string }) => {
  if (m.lt !== undefined) return // the log's own
  if (m.type === 'metrics')
    // Merged at each request: roles add metrics to their registries as they start (the rules').
    void Registry.merge([jobMetrics.registry, sinkMetrics.registry])
      .getMetricsAsJSON()
      .then((json) => post({ type: 'metrics', id: m.id, json }))
  else if (m.type === 'close') void close()
})

async function start(): Promise<void> {
  if (cfg.up.analyticsNice > 0 && offRowPath(roles)) {
    const failed = lowerThreadPriority(cfg.up.analyticsNice)
    if (failed) logger.warn('jobs thread priority left as it is', { roles, reason: failed })
  }
  const onFatal = (job: string) => post({ type: 'fatal', job })
  running.push(...(await startUpJobs(cfg, log, logger, jobMetrics, onFatal, roles)))
  if (roles.includes('sink'))
    running.push(await startUpSink(cfg, log, logger, sinkMetrics, createSchemaRegistry(cfg.schemaRegistry)))
}

start().then(
  () => post({ type: 'ready' }),
  (err: unknown) => post({ type: 'failed', message: (err as Error).message }),
)
