import type { Logger } from '../core/logging/logger'
import type { DeviceStore } from './auth/credentials'
import type { BridgeConfig } from './config'
import type { IngestPipeline } from './ingest/pipeline'
import type { BridgeMetrics } from './metrics'
import type { TopicTemplate } from './topic-template'

/** What every ingest adapter receives. */
export interface AdapterDeps {
  config: BridgeConfig
  pipeline: IngestPipeline
  devices: DeviceStore
  downlink: TopicTemplate
  metrics: BridgeMetrics
  logger: Logger
  ready: () => boolean
}

/** A running front end: where it listens, and how to stop it in two steps (see startBridge). */
export interface RunningAdapter {
  listening: Record<string, number | string | undefined>
  stopAccepting(): Promise<void>
  close(): Promise<void>
}

/** A protocol front end of the bridge. */
export interface IngestAdapter {
  name: string
  enabled(config: BridgeConfig): boolean
  start(deps: AdapterDeps): Promise<RunningAdapter>
}

/** Declares an ingest adapter (STYLE: units are plain objects made by a define* helper). */
export function defineIngestAdapter(adapter: IngestAdapter): IngestAdapter {
  return adapter
}

/**
 * Loads a front end's module when it starts. A plain require: under tsx a dynamic import()
 * would go through the ESM resolver, which wants file extensions that compiled code lacks.
 */
function lazy<T>(id: string): T {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- deliberate lazy load, see above
  return require(id) as T
}

/**
 * The bridge's ingest adapters: the only place that names them. Modules are loaded when an
 * adapter starts, so a process only loads the protocols it runs (aedes is ESM-only, see
 * bridge/mqtt/embedded.ts).
 */
export const ingestAdapters: IngestAdapter[] = [
  defineIngestAdapter({
    name: 'mqtt-embedded',
    enabled: (c) => c.mqtt.mode === 'embedded',
    start: async (deps) => {
      const { startEmbeddedMqtt } = lazy<typeof import('./mqtt/embedded')>('./mqtt/embedded')
      const m = await startEmbeddedMqtt(deps)
      return {
        listening: { mqtt: m.port, mqttWs: m.wsPort, mqttTls: m.tlsPort },
        stopAccepting: m.stopAccepting,
        close: m.close,
      }
    },
  }),
  defineIngestAdapter({
    name: 'mqtt-external',
    enabled: (c) => c.mqtt.mode === 'external',
    start: async (deps) => {
      const { startExternalMqtt } = lazy<typeof import('./mqtt/external')>('./mqtt/external')
      const m = await startExternalMqtt(deps)
      return {
        listening: { mqttExternal: deps.config.mqtt.external.url },
        stopAccepting: m.stopAccepting,
        close: m.close,
      }
    },
  }),
  defineIngestAdapter({
    name: 'http',
    enabled: (c) => c.http.enabled,
    start: async (deps) => {
      const { startHttpIngest } = lazy<typeof import('./http/server')>('./http/server')
      const h = await startHttpIngest(deps)
      return { listening: { http: h.port }, stopAccepting: async () => undefined, close: h.close }
    },
  }),
]
