import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { readStoreFor } from '../api/cli'
import { ApiKeyStore } from '../api/keys'
import { startApi } from '../api/start'
import { createDeviceStore } from '../bridge/auth'
import { startBridge } from '../bridge/index'
import { runAlertConsumer } from '../consumers/alerts/deliver'
import { logSink } from '../consumers/alerts/log-sink'
import { AlertMetrics } from '../consumers/alerts/metrics'
import { SinkMetrics } from '../consumers/sinks/metrics'
import { EmbeddedEventLog } from '../core/embedded-log/log'
import { AvroCodec } from '../core/envelope/codec'
import { createSchemaRegistry } from '../core/envelope/telemetry'
import { KafkaEventLog } from '../core/kafka/kafkajs-log'
import type { EventLog } from '../core/kafka/log'
import { designTopics } from '../core/kafka/topics'
import type { Logger } from '../core/logging/logger'
import { assetPath } from '../core/paths'
import { loadRuleFiles } from '../rules/loader'
import { publishRules } from '../rules/publish'
import type { Alert, Device, RuleDefinition } from '../schemas/types.generated'
import { JobMetrics } from '../stream-jobs/runtime/metrics'
import type { Registry } from 'prom-client'
import type { UpRoleConfig } from './config'
import { startJobsThread, threadsRegistry, type JobsThread } from './jobs-thread'
import { startUpJobs, startUpSink, THREAD_ROLES } from './roles'

/** What `fleetstream up` started: where it listens, the demo credentials, how to stop it. */
export interface RunningUp {
  listening: { mqtt?: number; http?: number; api: number; dashboard: string; metrics: string }
  demo: { deviceId: string; token: string; apiKey: string }
  log: EventLog
  close(): Promise<void>
}

/** The counters the dashboard shows: each stage's totals, summed over labels (of one job, for the jobs). */
const COUNTERS: [string, string, string?][] = [
  ['bridge: received', 'fleetstream_bridge_received_total'],
  ['bridge: accepted', 'fleetstream_bridge_accepted_total'],
  ['bridge: rejected', 'fleetstream_bridge_rejected_total'],
  ['bridge: dead letters', 'fleetstream_bridge_deadletter_total'],
  ['enrich: records in', 'fleetstream_job_records_in_total', 'enrich'],
  ['rollup: window firings', 'fleetstream_job_window_firings_total', 'rollup'],
  ['rollup: late records', 'fleetstream_job_late_records_total', 'rollup'],
  ['rules: alert events', 'fleetstream_job_records_out_total', 'rules'],
  ['sink: rows written', 'fleetstream_sink_rows_total'],
  ['sink: dead letters', 'fleetstream_sink_deadletter_total'],
]

async function pipelineCounters(registries: Registry[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const [label, name, job] of COUNTERS) {
    const m = registries.map((r) => r.getSingleMetric(name)).find((x) => x !== undefined)
    if (!m) continue
    const v = await m.get()
    out[label] = v.values
      .filter((x) => job === undefined || x.labels.job === job)
      .reduce((a, x) => a + x.value, 0)
  }
  return out
}

/** Paths under `data/` (the defaults) follow `up.dataDir`. */
function relocate(cfg: UpRoleConfig): UpRoleConfig {
  const dir = cfg.up.dataDir
  const inData = (p: string) => (p.startsWith('data/') ? path.join(dir, p.slice(5)) : p)
  return {
    ...cfg,
    bridge: { ...cfg.bridge, auth: { ...cfg.bridge.auth, file: inData(cfg.bridge.auth.file) } },
    sinks: { ...cfg.sinks, sqlite: { ...cfg.sinks.sqlite, file: inData(cfg.sinks.sqlite.file) } },
    api: { ...cfg.api, keysFile: inData(cfg.api.keysFile), store: cfg.up.store },
  }
}

/** The demo device and a read API key: made on first start, kept in `<dataDir>/demo.json` (mode 0600). */
async function demoCredentials(cfg: UpRoleConfig): Promise<RunningUp['demo']> {
  const file = path.join(cfg.up.dataDir, 'demo.json')
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as RunningUp['demo']
  const devices = createDeviceStore(cfg.bridge.auth)
  try {
    const { token } = await devices.add(cfg.up.demoDevice)
    const apiKey = new ApiKeyStore(path.resolve(cfg.api.keysFile)).add('demo', ['read', 'write:alerts']).key
    const demo = { deviceId: cfg.up.demoDevice, token, apiKey }
    writeFileSync(file, `${JSON.stringify(demo, null, 2)}\n`, { mode: 0o600 })
    return demo
  } finally {
    await devices.close()
  }
}

/**
 * The whole pipeline in one process: the bridge (MQTT + HTTP), the enrich, rollup and rules
 * jobs, the log alert consumer, a sink and the query API — on the embedded log and the SQLite
 * store by default, or on Kafka (`up.kafka`) and any store (`up.store`). The role code is the
 * same as when each runs alone; only the event log and the store differ.
 */
export async function startUp(config: UpRoleConfig, logger: Logger): Promise<RunningUp> {
  const cfg = relocate(config)
  const log: EventLog = cfg.up.kafka
    ? new KafkaEventLog(cfg.kafka, logger)
    : new EmbeddedEventLog({
        dir: path.join(cfg.up.dataDir, 'log'),
        fetchLingerMs: cfg.up.fetchLingerMs,
        groupCommitMs: cfg.up.groupCommitMs,
        logger: logger.child({ component: 'log' }),
      })
  const closers: (() => Promise<void>)[] = []
  const close = async () => {
    for (const c of closers.reverse())
      await c().catch((err: unknown) => logger.error('stop failed', { error: (err as Error).message }))
    await log.close()
  }
  try {
    const admin = await log.admin()
    await admin.ensureTopics(designTopics(cfg.topics))
    const rulesEnd = await admin.endOffsets(cfg.topics.rules)
    await admin.close()
    const registry = createSchemaRegistry(cfg.schemaRegistry)

    // Rules: the shipped examples (or up.rules) when the rules topic has none yet.
    if ([...rulesEnd.values()].every((o) => o === '0')) {
      const files = cfg.up.rules ?? assetPath('rules', 'examples')
      await publishRules(log, {
        codec: await AvroCodec.bundled<RuleDefinition>(registry, 'rule-definition.avsc'),
        topic: cfg.topics.rules,
        rules: loadRuleFiles(files),
        source: files,
      })
    }
    const demo = await demoCredentials(cfg)
    // The demo device's registry entry (enrichment joins it; range rules read its limits).
    const deviceCodec = await AvroCodec.bundled<Device>(registry, 'device.avsc')
    const registryProducer = await log.producer()
    await registryProducer.send([
      {
        topic: cfg.topics.devices,
        key: demo.deviceId,
        value: deviceCodec.encode({
          deviceId: demo.deviceId,
          tenant: 'demo',
          site: 'lab',
          model: 'sim-1',
          tags: { demo: 'true' },
          limits: { temperature: { min: -10, max: 40 } },
        }),
      },
    ])
    await registryProducer.close()

    // Stream jobs and the sink: here, or on a thread of their own (their metrics with them).
    const onJobFatal = (job: string) => {
      logger.error('a stream job stopped for good; stopping', { job })
      process.exitCode = 1
      void close()
    }
    const registries: Registry[] = []
    let threadRegistry: (() => Promise<Registry>) | undefined
    if (cfg.up.jobsThreads > 0) {
      const threads: JobsThread[] = []
      for (const roles of THREAD_ROLES[cfg.up.jobsThreads as 1 | 2]) {
        const thread = await startJobsThread(cfg, log, logger, onJobFatal, roles)
        threads.push(thread)
        closers.push(() => thread.close())
      }
      threadRegistry = () => threadsRegistry(threads)
    } else {
      const jobMetrics = new JobMetrics()
      const sinkMetrics = new SinkMetrics()
      registries.push(jobMetrics.registry, sinkMetrics.registry)
      for (const job of await startUpJobs(cfg, log, logger, jobMetrics, onJobFatal))
        closers.push(() => job.close())
      const sink = await startUpSink(cfg, log, logger, sinkMetrics, registry)
      closers.push(() => sink.close())
    }
    const allRegistries = async () => (threadRegistry ? [...registries, await threadRegistry()] : registries)

    // Alert consumer (log), API.
    const alertMetrics = new AlertMetrics()
    registries.push(alertMetrics.registry)
    const alerts = await runAlertConsumer(log, logSink(logger), {
      groupId: `${cfg.alerts.applicationId}-alerts-log`,
      alertsTopic: cfg.topics.alerts,
      deadletterTopic: cfg.topics.deadletter,
      retry: { maxAttempts: 1, initialBackoffMs: 1, maxBackoffMs: 1 },
      codec: await AvroCodec.bundled<Alert>(registry, 'alert.avsc'),
      metrics: alertMetrics,
      logger,
    })
    closers.push(() => alerts.close())
    const store = readStoreFor(cfg)
    closers.push(() => store.close())
    const api = await startApi(cfg, {
      log,
      store,
      logger,
      registry,
      pipelineStats: async () => pipelineCounters(await allRegistries()),
      metricsRegistries: allRegistries,
    })
    closers.push(() => api.close())
    const apiPort = api.port

    // The bridge last: devices are acknowledged only once everything behind it runs.
    // The API's registry has the process metrics: collecting a second set (the bridge's) read
    // /proc/self/fd and listed every socket's handle twice more per scrape, ~15 ms each at 10,000 devices.
    const bridge = await startBridge(cfg, logger, { log, processMetrics: false })
    closers.push(() => bridge.close())
    registries.unshift(bridge.metrics.registry)
    const host = cfg.api.host === '0.0.0.0' ? '127.0.0.1' : cfg.api.host
    return {
      listening: {
        mqtt: bridge.listening.mqtt as number | undefined,
        http: bridge.listening.http as number | undefined,
        api: apiPort,
        dashboard: `http://${host}:${apiPort}/`,
        metrics: `http://${host}:${apiPort}/metrics (every role)`,
      },
      demo,
      log,
      close,
    }
  } catch (err) {
    await close()
    throw err
  }
}
