import type { IClientOptions, MqttClient } from 'mqtt'
import { connectMqtt } from '../mqtt'
import { serverEnv } from '../servers'
import { within } from '../kafka'

function connect(opts: IClientOptions): Promise<MqttClient> {
  return connectMqtt(serverEnv().FS_MOSQUITTO_URL, { connectTimeout: 5000, ...opts })
}

describe('test > servers > mosquitto smoke [mosquitto]', () => {
  const auth = () => ({
    username: serverEnv().FS_MOSQUITTO_USER,
    password: serverEnv().FS_MOSQUITTO_PASSWORD,
  })

  it('delivers an authenticated QoS 1 publish to an authenticated subscriber (MQTT 5)', async () => {
    const sub = await connect({ ...auth(), protocolVersion: 5, clientId: 'smoke-sub' })
    const pub = await connect({ ...auth(), protocolVersion: 5, clientId: 'smoke-pub' })
    try {
      await sub.subscribeAsync('devices/smoke-1/telemetry', { qos: 1 })
      const got = new Promise<{ topic: string; payload: string }>((resolve) =>
        sub.once('message', (topic, payload) => resolve({ topic, payload: payload.toString() })),
      )
      await pub.publishAsync('devices/smoke-1/telemetry', '{"temperature":21.5}', { qos: 1 })
      expect(await within(got, 10_000)).toEqual({
        topic: 'devices/smoke-1/telemetry',
        payload: '{"temperature":21.5}',
      })
    } finally {
      await sub.endAsync()
      await pub.endAsync()
    }
  })

  it('splits a shared subscription between two members (MQTT 5 $share)', async () => {
    const a = await connect({ ...auth(), protocolVersion: 5, clientId: 'share-a' })
    const b = await connect({ ...auth(), protocolVersion: 5, clientId: 'share-b' })
    const pub = await connect({ ...auth(), protocolVersion: 5, clientId: 'share-pub' })
    try {
      const counts = { a: 0, b: 0 }
      a.on('message', () => counts.a++)
      b.on('message', () => counts.b++)
      await a.subscribeAsync('$share/bridges/shared/+/telemetry', { qos: 1 })
      await b.subscribeAsync('$share/bridges/shared/+/telemetry', { qos: 1 })
      for (let i = 0; i < 20; i++) await pub.publishAsync(`shared/d${i}/telemetry`, String(i), { qos: 1 })
      await within(
        new Promise<void>((r) => {
          const t = setInterval(() => {
            if (counts.a + counts.b >= 20) {
              clearInterval(t)
              r()
            }
          }, 20)
        }),
        10_000,
      )
      expect(counts.a + counts.b).toBe(20)
      expect(counts.a).toBeGreaterThan(0)
      expect(counts.b).toBeGreaterThan(0)
    } finally {
      await Promise.all([a.endAsync(), b.endAsync(), pub.endAsync()])
    }
  })

  it('refuses an anonymous client', async () => {
    await expect(connect({ protocolVersion: 5, clientId: 'anon' })).rejects.toThrow(
      /Not authorized|Bad User Name or Password/i,
    )
  })

  it('refuses a wrong password', async () => {
    await expect(
      connect({
        username: serverEnv().FS_MOSQUITTO_USER,
        password: 'nope',
        protocolVersion: 4,
        clientId: 'badpw',
      }),
    ).rejects.toThrow(/Not authorized|Bad username or password|Bad User Name or Password/i)
  })
})
