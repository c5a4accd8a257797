import mqtt, { type MqttClient } from 'mqtt'
import type { Alert } from '../../schemas/types.generated'
import { DeliveryError, type AlertSink } from './deliver'

/**
 * Publishes each alert event (JSON, QoS 1) to the device's own downlink topic on an MQTT broker
 * (the bridge's embedded broker, or Mosquitto), so the device can react; delivered once the
 * broker acknowledges (PUBACK).
 */
export async function mqttDownlinkSink(o: {
  url: string
  username?: string
  password?: string
  clientId: string
  /** Topic template with `{deviceId}`. */
  topic: string
}): Promise<AlertSink> {
  const client: MqttClient = await mqtt.connectAsync(o.url, {
    clientId: o.clientId,
    username: o.username,
    password: o.password,
    protocolVersion: 5,
    reconnectPeriod: 1_000,
  })
  return {
    name: 'mqtt',
    async deliver(alert: Alert) {
      // A device id with MQTT wildcards or separators would address other topics: refuse it.
      if (/[+#/]/.test(alert.deviceId))
        throw new DeliveryError(`device id ${alert.deviceId} is not a topic level`, false)
      const topic = o.topic.replaceAll('{deviceId}', alert.deviceId)
      try {
        await client.publishAsync(topic, JSON.stringify(alert), { qos: 1 })
      } catch (err) {
        throw new DeliveryError(`publish to ${topic}: ${(err as Error).message}`, true)
      }
    },
    close: () => client.endAsync(),
  }
}
