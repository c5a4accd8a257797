import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { PushbackError, RateLimitError } from '../errors'
import type { AdapterDeps } from '../registry'
import { compileTopicTemplate, matchTopic } from '../topic-template'

/** Marks an ack that is sent later, when Kafka has the message (see startExternalMqtt). */
class DeferredAck extends Error {
  constructor() {
    super('ack deferred until the message is durable in Kafka')
  }
}

/** The MQTT client's own packet writer; mqtt.js has no public call to send a PUBACK later. */
type PacketSender = {
  _sendPacket(packet: { cmd: 'puback'; messageId: number; reasonCode: number }, cb?: () => void): void
}

/**
 * Bridge mode: a client of an external broker (Mosquitto), subscribed with MQTT 5 shared
 * subscriptions (`$share/<group>/<topic>`) so several bridges split the load. A message is
 * acknowledged to the broker only once Kafka has it: mqtt.js is told the ack is deferred
 * (so it goes on reading) and the PUBACK is sent when the write completes. The session is
 * persistent (clean start off): after a crash, a bridge with the same client id gets every
 * unacknowledged message again. Device identity comes from the topic; the broker's ACL must
 * let a device publish only on its own topic (see bridge/mosquitto/).
 */
export async function startExternalMqtt(
  deps: AdapterDeps,
): Promise<{ stopAccepting(): Promise<void>; close(): Promise<void> }> {
  const { config, pipeline, metrics } = deps
  const ext = config.mqtt.external
  const log = deps.logger.child({ component: 'bridge.mqtt-external' })
  const templates = config.topics.telemetry.map(compileTopicTemplate)
  let stopping = false
  let pausedUntil = 0

  const deviceOf = (topic: string): string => {
    try {
      return matchTopic(templates, topic, config.limits.maxTopicLevels).deviceId!
    } catch {
      return 'unknown' // the pipeline refuses the topic and dead-letters it
    }
  }

  const options: IClientOptions = {
    protocolVersion: 5,
    clientId: ext.clientId,
    clean: false,
    username: ext.username,
    password: ext.password,
    reconnectPeriod: 1000,
    connectTimeout: config.limits.connectTimeoutMs,
    properties: { sessionExpiryInterval: 24 * 3600, receiveMaximum: ext.receiveMaximum },
    customHandleAcks: (topic, message, packet, cb) => {
      const messageId = (packet as { messageId: number }).messageId
      const receivedAt = Date.now()
      const result = pipeline.ingest({
        source: 'mqtt',
        deviceId: deviceOf(topic),
        tenant: null,
        topic,
        payload: message,
        receivedAt,
      })
      cb(new DeferredAck())
      result.then(
        () => {
          // Disconnected meanwhile: the broker sends it again, and the duplicate is dropped downstream.
          if (client.connected)
            (client as unknown as PacketSender)._sendPacket({ cmd: 'puback', messageId, reasonCode: 0 })
        },
        (err: unknown) => {
          // No ack: the broker keeps the message in this session and sends it again after a
          // reconnect. Reconnect once the bridge can take messages again.
          if (err instanceof PushbackError || err instanceof RateLimitError) pauseFor(err.retryAfterS)
          else log.error('ingest failed', { error: (err as Error).message })
        },
      )
    },
  }
  const client: MqttClient = mqtt.connect(ext.url, options)

  function pauseFor(seconds: number): void {
    const until = Date.now() + seconds * 1000
    if (until <= pausedUntil) return
    pausedUntil = until
    log.warn(
      'pushback: disconnecting from the external broker; unacknowledged messages stay in its session',
      { retryAfterS: seconds },
    )
    client.end(true, {}, () => {
      setTimeout(() => {
        if (!stopping) client.reconnect()
      }, seconds * 1000)
    })
  }

  client.on('error', (err) => {
    if (err instanceof DeferredAck) return
    log.warn('external broker error', { error: err.message })
  })
  client.on('connect', (connack) => {
    metrics.connections.set({ transport: 'external' }, 1)
    const topics = ext.subscriptions.map((t) => `$share/${ext.group}/${t}`)
    log.info('connected to external broker', { url: ext.url, sessionPresent: connack.sessionPresent, topics })
    client.subscribe(topics, { qos: 1 }, (err, granted) => {
      if (err) log.error('subscribe failed', { error: err.message })
      else if (granted?.some((g) => g.qos > 2)) log.error('subscription refused by the broker', { granted })
    })
  })
  client.on('close', () => metrics.connections.set({ transport: 'external' }, 0))

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      if (err instanceof DeferredAck) return
      client.removeListener('connect', onConnect)
      client.end(true)
      reject(err)
    }
    const onConnect = () => {
      client.removeListener('error', onError)
      resolve()
    }
    client.once('connect', onConnect)
    client.once('error', onError)
  })

  return {
    stopAccepting: async () => {
      stopping = true
      // No new messages; those in flight still get their PUBACK while the writer drains.
      await client
        .unsubscribeAsync(ext.subscriptions.map((t) => `$share/${ext.group}/${t}`))
        .catch(() => undefined)
    },
    close: () => client.endAsync(),
  }
}
