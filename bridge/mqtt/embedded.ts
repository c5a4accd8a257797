import { readFileSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import { createServer as createNetServer, Socket, type AddressInfo, type Server as NetServer } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'
import type { Duplex } from 'node:stream'
// aedes is ESM-only; Node ≥ 20.19 loads it through require(). This module is therefore never
// imported by jest tests: they run the bridge as a real process.
import { Aedes, type AedesOptions, type Client } from 'aedes'
import { WebSocketServer, createWebSocketStream } from 'ws'
import type { DeviceIdentity } from '../auth/credentials'
import type { AdapterDeps } from '../registry'
import { PushbackError, RateLimitError } from '../errors'
import { LoginGate } from './login-gate'
import { PacketSizeGuard } from './packet-guard'

/** aedes's CONNACK return codes (MQTT 3.1.1 §3.2.2.3). */
const BAD_USERNAME_OR_PASSWORD = 4
const NOT_AUTHORIZED = 5
const SERVER_UNAVAILABLE = 3

/** Where the embedded broker listens, once started. */
export interface EmbeddedMqtt {
  port: number
  wsPort: number | undefined
  tlsPort: number | undefined
  /** Stops accepting new connections; connected devices keep publishing until close(). */
  stopAccepting(): Promise<void>
  /** Disconnects every client and stops the broker. */
  close(): Promise<void>
}

type IdentifiedClient = Client & { fsIdentity?: DeviceIdentity; fsRelease?: () => void }

function authError(message: string, code: number): Error & { returnCode: number } {
  return Object.assign(new Error(message), { returnCode: code })
}

/**
 * An aedes broker in front of the ingest pipeline. Devices log in with their device id as
 * username and their token as password. For QoS 1/2 the Kafka write completes inside
 * `authorizePublish`, the only aedes hook that runs before PUBACK/PUBREC, so a device's ack
 * means its message is durable in Kafka. Refused data is acknowledged after its dead-letter
 * record is durable (so a device does not resend poison forever); under pushback the ack is
 * withheld and the connection closed, and the device resends later.
 */
export async function startEmbeddedMqtt(deps: AdapterDeps): Promise<EmbeddedMqtt> {
  const { config, pipeline, devices, metrics } = deps
  const { limits } = config
  const log = deps.logger.child({ component: 'bridge.mqtt' })

  const options: AedesOptions = {
    id: `fleetstream-${process.pid}`,
    connectTimeout: limits.connectTimeoutMs,
    keepaliveLimit: limits.keepaliveMaxS,
    // aedes refuses deeper topics itself, before authorizePublish (see the clientError handler
    // below); up to its maximum, the pipeline judges depth and dead-letters with a reason.
    maxTopicLevels: 100,
    maxClientsIdLength: 128,
    preConnect: (client, _packet, done) => {
      if (broker.connectedClients >= limits.maxConnections) {
        metrics.authFailures.inc({ source: 'mqtt', reason: 'max_connections' })
        return done(authError('too many connections', SERVER_UNAVAILABLE), false)
      }
      done(null, true)
      void client
    },
    authenticate: (client, username, password, done) => {
      const c = client as IdentifiedClient
      if (!username || !password) {
        metrics.authFailures.inc({ source: 'mqtt', reason: 'anonymous' })
        return done(authError('device id and token required', NOT_AUTHORIZED), false)
      }
      devices.verify(username, password.toString('utf8')).then(
        (identity) => {
          if (!identity) {
            metrics.authFailures.inc({ source: 'mqtt', reason: 'bad_credentials' })
            log.warn('login refused', { deviceId: username.slice(0, 128), code: 'FS_BRIDGE_AUTH' })
            return done(authError('bad device id or token', BAD_USERNAME_OR_PASSWORD), false)
          }
          c.fsIdentity = identity
          done(null, true)
        },
        (err: unknown) => {
          log.error('device store unavailable', { error: (err as Error).message })
          done(authError('device store unavailable', SERVER_UNAVAILABLE), false)
        },
      )
    },
    authorizePublish: (client, packet, done) => {
      const identity = (client as IdentifiedClient | null)?.fsIdentity
      if (!client) return done(null) // the broker's own publishes (downlink)
      if (!identity) return done(new Error('not authenticated'))
      const receivedAt = Date.now()
      const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload)
      // ingest() reserves this message's place in the write order synchronously, here, so a
      // device's messages reach Kafka in the order aedes hands them over.
      const result = pipeline.ingest({
        source: 'mqtt',
        deviceId: identity.deviceId,
        tenant: identity.tenant,
        topic: packet.topic,
        payload,
        receivedAt,
      })
      if (packet.qos === 0) {
        // Best effort: no ack to withhold. A drop under pushback is counted.
        result.then(
          () => undefined,
          (err: unknown) => {
            if (err instanceof PushbackError || err instanceof RateLimitError) metrics.qos0Dropped.inc()
          },
        )
        return done(null)
      }
      result.then(
        () => done(null),
        (err: unknown) => {
          // No PUBACK: aedes closes the connection on an error; the device resends its
          // unacknowledged messages when it reconnects (MQTT 3.1.1 §4.4).
          if (!(err instanceof PushbackError || err instanceof RateLimitError))
            log.error('ingest failed', { deviceId: identity.deviceId, error: (err as Error).message })
          done(err as Error)
        },
      )
    },
    authorizeSubscribe: (client, sub, done) => {
      const identity = (client as IdentifiedClient).fsIdentity
      if (identity && sub.topic === deps.downlink.format({ deviceId: identity.deviceId }))
        return done(null, sub)
      metrics.authFailures.inc({ source: 'mqtt', reason: 'subscribe_forbidden' })
      log.warn('subscription refused', {
        deviceId: identity?.deviceId,
        topic: sub.topic.slice(0, 200),
        code: 'FS_BRIDGE_FORBIDDEN',
      })
      done(null, null) // SUBACK 0x80: refused, connection kept
    },
  }
  const broker = await Aedes.createBroker(options)

  broker.on('clientError', (client, err) => {
    const identity = (client as IdentifiedClient).fsIdentity
    if (/too many levels/.test(err.message)) {
      void pipeline.refuse(
        {
          source: 'mqtt',
          deviceId: identity?.deviceId ?? 'unknown',
          tenant: identity?.tenant ?? null,
          topic: null,
          payload: Buffer.alloc(0),
          receivedAt: Date.now(),
        },
        'FS_BRIDGE_TOPIC',
        'topic has more than 100 levels: connection closed',
      )
      return
    }
    log.debug('client error', { deviceId: identity?.deviceId, error: err.message })
  })
  broker.on('connectionError', (_client, err) => log.debug('connection error', { error: err.message }))

  // A login holds its slot until its CONNACK is written, its connection closes, or maxLoginHoldMs.
  const gate = new LoginGate(limits.maxLoginsInFlight, limits.maxLoginHoldMs)
  broker.on('connackSent', (_packet, client) => (client as IdentifiedClient).fsRelease?.())
  metrics.loginsWaiting = () => gate.queued

  const handle = (transport: string) => (conn: Socket | Duplex, req?: IncomingMessage) => {
    metrics.connections.inc({ transport })
    let release: (() => void) | undefined
    const withdraw = gate.enter((r) => {
      release = r
      if (conn.destroyed) return r()
      const client = admit(conn, req) as IdentifiedClient
      client.fsRelease = r
    })
    conn.once('close', () => {
      metrics.connections.dec({ transport })
      withdraw()
      release?.()
    })
  }

  const admit = (conn: Socket | Duplex, req?: IncomingMessage): Client => {
    const guarded = new PacketSizeGuard(conn, limits.maxPayloadBytes * 4, (declared) => {
      metrics.authFailures.inc({ source: 'mqtt', reason: 'packet_too_large' })
      void pipeline.refuse(
        {
          source: 'mqtt',
          deviceId: 'unknown',
          tenant: null,
          topic: null,
          payload: Buffer.alloc(0),
          receivedAt: Date.now(),
        },
        'FS_BRIDGE_TOO_LARGE',
        `MQTT packet of ${declared} bytes declared; the limit is ${limits.maxPayloadBytes * 4}: connection closed`,
      )
    })
    guarded.on('error', () => undefined)
    if (conn instanceof Socket) conn.resume()
    return broker.handle(guarded, req)
  }

  const servers: { close(cb: () => void): void }[] = []
  // Paused: a connection waiting at the login gate is not read.
  const tcp: NetServer = createNetServer({ pauseOnConnect: true }, handle('tcp'))
  tcp.maxConnections = limits.maxConnections + 100
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject)
    tcp.listen({ port: config.mqtt.port, host: config.mqtt.host, backlog: limits.listenBacklog }, () =>
      resolve(),
    )
  })
  servers.push(tcp)

  let wsPort: number | undefined
  if (config.mqtt.wsPort !== undefined) {
    const wss = new WebSocketServer({
      host: config.mqtt.host,
      port: config.mqtt.wsPort,
      backlog: limits.listenBacklog,
      maxPayload: limits.maxPayloadBytes * 4,
    })
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
    wss.on('connection', (ws, req) => handle('ws')(createWebSocketStream(ws), req))
    wsPort = (wss.address() as AddressInfo).port
    servers.push(wss)
  }

  let tlsPort: number | undefined
  if (config.mqtt.tls) {
    const tls = createTlsServer(
      { cert: readFileSync(config.mqtt.tls.certFile), key: readFileSync(config.mqtt.tls.keyFile) },
      handle('tls'),
    )
    await new Promise<void>((resolve) =>
      tls.listen({ port: config.mqtt.tls!.port, host: config.mqtt.host, backlog: limits.listenBacklog }, () =>
        resolve(),
      ),
    )
    tlsPort = (tls.address() as AddressInfo).port
    servers.push(tls)
  }

  const port = (tcp.address() as AddressInfo).port
  log.info('embedded MQTT broker listening', { port, wsPort, tlsPort })
  return {
    port,
    wsPort,
    tlsPort,
    stopAccepting: async () => {
      // close() stops listening at once; its callback waits for open connections, so don't wait for it.
      for (const s of servers) s.close(() => undefined)
    },
    close: async () => {
      await new Promise<void>((r) => broker.close(() => r()))
    },
  }
}
