import { z } from 'zod'

/** Log levels, most to least severe (winston's npm levels). */
export const logLevels = ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'] as const
/** One of winston's npm levels. */
export type LogLevel = (typeof logLevels)[number]

const hostPort = z.string().regex(/^[^\s:]+:\d{1,5}$/, 'expected host:port')

/**
 * A list of strings that also accepts one comma-separated string, the usual shape of a list in
 * an environment variable (`FLEETSTREAM_KAFKA__BROKERS=a:9092,b:9092`).
 */
export function stringList<T extends z.ZodType<string>>(item: T) {
  return z.preprocess(
    (v) =>
      typeof v === 'string'
        ? v
            .split(',')
            .map((x) => x.trim())
            .filter(Boolean)
        : v,
    z.array(item).min(1),
  )
}

/** Kafka connection settings. */
export const kafkaConfig = z.strictObject({
  brokers: stringList(hostPort).default(['127.0.0.1:9092']),
  clientId: z.string().min(1).default('fleetstream'),
  ssl: z.boolean().default(false),
  sasl: z
    .strictObject({
      mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
      username: z.string().min(1),
      password: z.string().min(1),
    })
    .optional(),
  connectionTimeoutMs: z.number().int().positive().default(3000),
  requestTimeoutMs: z.number().int().positive().default(30000),
  /** Consumer group session timeout: how long a crashed member holds its partitions, ms. */
  sessionTimeoutMs: z.number().int().min(6000).default(30000),
})

/** Topic names (defaults from ARCHITECTURE.md) and how new topics are created. */
export const topicsConfig = z.strictObject({
  raw: z.string().min(1).default('iot.telemetry.raw'),
  devices: z.string().min(1).default('iot.devices'),
  enriched: z.string().min(1).default('iot.telemetry.enriched'),
  late: z.string().min(1).default('iot.telemetry.late'),
  rollups1m: z.string().min(1).default('iot.rollups.1m'),
  rollups1h: z.string().min(1).default('iot.rollups.1h'),
  rules: z.string().min(1).default('iot.rules'),
  alerts: z.string().min(1).default('iot.alerts'),
  deadletter: z.string().min(1).default('iot.deadletter'),
  partitions: z.number().int().min(1).max(10000).default(6),
  replicationFactor: z.number().int().min(1).max(32).default(1),
})

/** Where Avro schema ids are resolved: the bundled local registry or a Confluent Schema Registry. */
export const schemaRegistryConfig = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('local') }),
  z.strictObject({
    kind: z.literal('confluent'),
    url: z.url(),
    username: z.string().optional(),
    password: z.string().optional(),
  }),
])

/** Logging: a default level and optional levels per component (e.g. `bridge.mqtt: debug`). */
export const logConfig = z.strictObject({
  level: z.enum(logLevels).default('info'),
  levels: z.record(z.string().min(1), z.enum(logLevels)).default({}),
})

/** The sections every role shares. Roles extend this with their own sections. */
export const coreConfig = z.strictObject({
  kafka: kafkaConfig.prefault({}),
  topics: topicsConfig.prefault({}),
  schemaRegistry: schemaRegistryConfig.default({ kind: 'local' }),
  log: logConfig.prefault({}),
  /** Log each message's path through the pipeline (`DEBUG_DATA_FLOW=true`). */
  debugDataFlow: z.boolean().default(false),
})

/** The validated core configuration. */
export type CoreConfig = z.infer<typeof coreConfig>
/** Topic names and creation settings. */
export type TopicsConfig = z.infer<typeof topicsConfig>
/** Kafka connection settings. */
export type KafkaConfig = z.infer<typeof kafkaConfig>
