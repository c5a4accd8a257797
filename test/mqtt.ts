import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'

/**
 * Connects an MQTT client for a test: no automatic reconnect unless asked, resolves on CONNACK,
 * rejects (and closes the client) on the first error, such as a refused login.
 */
export function connectMqtt(url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 10_000, ...opts })
    c.once('connect', () => resolve(c))
    c.once('error', (err) => {
      c.end(true)
      reject(err)
    })
  })
}
