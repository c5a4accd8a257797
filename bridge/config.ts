import { z } from 'zod'
import { coreConfig, stringList } from '../core/config/schema'

const port = z.number().int().min(0).max(65535)

/** Settings of the bridge role (`bridge:` in the YAML file). */
export const bridgeConfig = z.strictObject({
  mqtt: z
    .strictObject({
      /** `embedded`: an aedes broker devices connect to; `external`: a client of a broker such as Mosquitto. */
      mode: z.enum(['embedded', 'external', 'off']).default('embedded'),
      host: z.string().default('0.0.0.0'),
      port: port.default(1883),
      /** MQTT over WebSocket on this port (embedded mode). */
      wsPort: port.optional(),
      tls: z
        .strictObject({ port: port.default(8883), certFile: z.string().min(1), keyFile: z.string().min(1) })
        .optional(),
      external: z
        .strictObject({
          url: z.string().default('mqtt://127.0.0.1:1883'),
          username: z.string().optional(),
          password: z.string().optional(),
          clientId: z.string().min(1).default('fleetstream-bridge'),
          /** Shared-subscription group: bridges in one group split the messages (MQTT 5 `$share`). */
          group: z.string().min(1).default('fleetstream'),
          subscriptions: stringList(z.string().min(1)).default(['devices/+/telemetry']),
          /** Messages the external broker may have in flight to this bridge before it waits for acks. */
          receiveMaximum: z.number().int().min(1).max(65535).default(1000),
        })
        .prefault({}),
    })
    .prefault({}),
  http: z
    .strictObject({
      enabled: z.boolean().default(true),
      host: z.string().default('0.0.0.0'),
      port: port.default(8080),
    })
    .prefault({}),
  topics: z
    .strictObject({
      /** Topic templates of telemetry, tried in order; a topic matching none goes to the dead-letter topic. */
      telemetry: stringList(z.string().min(1)).default(['devices/{deviceId}/telemetry']),
      /** Where a device may subscribe (its own downlink only). */
      downlink: z.string().min(1).default('devices/{deviceId}/downlink'),
    })
    .prefault({}),
  auth: z
    .strictObject({
      store: z.enum(['file', 'postgres']).default('file'),
      file: z.string().min(1).default('data/devices.json'),
      postgresUrl: z.string().optional(),
      /** How long a verified token is remembered (a revoke elsewhere takes effect within this). */
      cacheTtlMs: z.number().int().min(0).default(60_000),
      /**
       * How new device tokens are stored: `sha256` (salted HMAC-SHA-256; enough for the 256-bit
       * random tokens fleetstream makes, microseconds a login) or `scrypt` (for a policy that
       * asks for a slow hash; ~40 ms a login). Stored tokens of either kind keep verifying.
       */
      tokenHash: z.enum(['sha256', 'scrypt']).default('sha256'),
      /**
       * scrypt cost of new tokens when `tokenHash` is `scrypt` (a power of two). The default
       * costs about 40 ms per login; a lower one makes a stolen credentials file cheaper to attack.
       */
      scryptN: z
        .number()
        .int()
        .min(1024)
        .max(1_048_576)
        .refine((n) => (n & (n - 1)) === 0, 'a power of two')
        .default(16_384),
    })
    .prefault({}),
  limits: z
    .strictObject({
      maxPayloadBytes: z
        .number()
        .int()
        .min(64)
        .default(256 * 1024),
      maxTopicLevels: z.number().int().min(1).max(100).default(16),
      maxMetrics: z.number().int().min(1).default(256),
      maxReadingsPerMessage: z.number().int().min(1).default(1000),
      maxStringBytes: z.number().int().min(1).default(1024),
      maxConnections: z.number().int().min(1).default(20_000),
      connectTimeoutMs: z.number().int().min(100).default(10_000),
      /**
       * MQTT connections handled at once between accept and CONNACK; more wait, unread, in
       * arrival order (bridge/mqtt/login-gate.ts), so a login storm does not hold up the
       * acknowledgements of the devices already connected.
       */
      maxLoginsInFlight: z.number().int().min(1).default(64),
      /** A login's place among them is freed after this long even without a CONNACK (a client that sends nothing). */
      maxLoginHoldMs: z.number().int().min(1).default(2000),
      /**
       * Connections the kernel queues for the MQTT and HTTP listeners before the bridge accepts
       * them (Linux caps it at net.core.somaxconn). With Node's default of 511, 10,000 devices
       * connecting at once overflowed the queue: the dropped connections were retried by the
       * devices' TCP after 1, 3, 7, 15… s, so some logins took two minutes or timed out.
       */
      listenBacklog: z.number().int().min(1).max(65_535).default(4096),
      keepaliveMaxS: z.number().int().min(1).max(65535).default(1200),
      /** Messages per second per device (0 = no limit), and the burst allowed above it. */
      ratePerDevice: z.number().min(0).default(200),
      burstPerDevice: z.number().min(1).default(400),
      /** Event times further ahead of the receive time than this are rejected (device clock skew). */
      maxFutureSkewMs: z.number().int().min(0).default(300_000),
    })
    .prefault({}),
  /** A reading whose metrics change type or bring new names: accept (counted), reject, or dead-letter. */
  drift: z.enum(['accept', 'reject', 'deadletter']).default('accept'),
  /** Exact duplicates of (deviceId, ts, seq) among a device's last N readings are dropped. */
  dedupeWindow: z.number().int().min(0).default(1024),
  writer: z
    .strictObject({
      maxBatchRecords: z.number().int().min(1).default(2000),
      lingerMs: z.number().min(0).default(1),
      /** Records held before the bridge pushes back (stops acknowledging / answers 503). */
      maxBufferedRecords: z.number().int().min(1).default(50_000),
      /** How long a device waits for its ack before the bridge gives up (MQTT: disconnect; HTTP: 503). */
      ackTimeoutMs: z.number().int().min(100).default(15_000),
      /** On Kafka, produce from a worker thread, beside the MQTT and decoding work (core/kafka/producer-thread.ts). */
      producerThread: z.boolean().default(true),
    })
    .prefault({}),
})

/** Configuration of a process running the bridge. */
export const bridgeRoleConfig = coreConfig.extend({ bridge: bridgeConfig.prefault({}) })
/** The validated bridge settings. */
export type BridgeConfig = z.infer<typeof bridgeConfig>
/** The validated configuration of a bridge process. */
export type BridgeRoleConfig = z.infer<typeof bridgeRoleConfig>
