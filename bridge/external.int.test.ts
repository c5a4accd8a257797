import type { MqttClient } from 'mqtt'
import { connectMqtt } from '../test/mqtt'
import { LocalSchemaRegistry } from '../core/envelope/registry'
import { createTelemetryCodec, type Telemetry } from '../core/envelope/telemetry'
import { partitionForKey } from '../core/kafka/murmur2'
import { bridgeTestEnv, metricValue, startBridgeProcess } from '../test/bridge-process'
import { collect, testKafkaLog } from '../test/kafka'
import { serverEnv, uniqueName } from '../test/servers'

function connectMosquitto(clientId: string): Promise<MqttClient> {
  const s = serverEnv()
  return connectMqtt(s.FS_MOSQUITTO_URL, {
    username: s.FS_MOSQUITTO_USER,
    password: s.FS_MOSQUITTO_PASSWORD,
    clientId,
    protocolVersion: 5,
  })
}

/** Publishes `perDevice` QoS 1 readings for each device through Mosquitto (50 unacknowledged at a time per device). */
async function publishAll(prefix: string, devices: string[], perDevice: number, t0: number): Promise<void> {
  const clients = await Promise.all(devices.map((d) => connectMosquitto(`${prefix}-${d}`)))
  await Promise.all(
    clients.map(async (c, i) => {
      for (let s = 0; s < perDevice; s += 50) {
        await Promise.all(
          Array.from({ length: Math.min(50, perDevice - s) }, (_, k) =>
            c.publishAsync(
              `${prefix}/${devices[i]}/telemetry`,
              JSON.stringify({ ts: t0 + s + k, seq: s + k, v: s + k }),
              { qos: 1 },
            ),
          ),
        )
      }
    }),
  )
  await Promise.all(clients.map((c) => c.endAsync()))
}

function externalEnv(name: string) {
  const s = serverEnv()
  const prefix = uniqueName(name).replace(/_/g, '-')
  return {
    prefix,
    env: bridgeTestEnv(name, {
      FLEETSTREAM_BRIDGE__MQTT__MODE: 'external',
      FLEETSTREAM_BRIDGE__MQTT__EXTERNAL__URL: s.FS_MOSQUITTO_URL,
      FLEETSTREAM_BRIDGE__MQTT__EXTERNAL__USERNAME: s.FS_MOSQUITTO_USER,
      FLEETSTREAM_BRIDGE__MQTT__EXTERNAL__PASSWORD: s.FS_MOSQUITTO_PASSWORD,
      FLEETSTREAM_BRIDGE__MQTT__EXTERNAL__CLIENT_ID: `${prefix}-bridge`,
      FLEETSTREAM_BRIDGE__MQTT__EXTERNAL__GROUP: `${prefix}-group`,
      FLEETSTREAM_BRIDGE__MQTT__EXTERNAL__SUBSCRIPTIONS: `${prefix}/+/telemetry`,
      FLEETSTREAM_BRIDGE__TOPICS__TELEMETRY: `${prefix}/{deviceId}/telemetry`,
      FLEETSTREAM_BRIDGE__LIMITS__RATE_PER_DEVICE: '0',
    }),
  }
}

async function readRaw(topic: string, atLeast: number, timeoutMs: number) {
  const log = testKafkaLog()
  try {
    const codec = await createTelemetryCodec(new LocalSchemaRegistry())
    const recs = await collect(
      log,
      { groupId: `x-${Date.now()}`, topics: [topic] },
      (r) => r.length >= atLeast,
      timeoutMs,
    )
    return Promise.all(
      recs.map(async (r) => ({ partition: r.partition, env: (await codec.decode(r.value!)) as Telemetry })),
    )
  } finally {
    await log.close()
  }
}

describe('bridge > bridge mode on Mosquitto (MQTT 5 shared subscription) [mosquitto] [kafka]', () => {
  it('carries 100 devices × 500 QoS 1 readings from Mosquitto into Kafka: exactly 50,000, order kept, murmur2 partitions', async () => {
    const { prefix, env } = externalEnv('ext')
    const bridge = await startBridgeProcess(env, 'bridge-external')
    try {
      const devices = Array.from({ length: 100 }, (_, i) => `x${String(i).padStart(3, '0')}`)
      await publishAll(prefix, devices, 500, Date.now() - 120_000)
      const got = await readRaw(env.FLEETSTREAM_TOPICS__RAW!, 50_000, 120_000)
      expect(got).toHaveLength(50_000)
      const last = new Map<string, number>()
      for (const { partition, env: e } of got) {
        expect(partition).toBe(partitionForKey(e.deviceId, 6))
        expect(e.seq).toBe((last.get(e.deviceId) ?? -1) + 1)
        last.set(e.deviceId, e.seq!)
      }
      expect(last.size).toBe(100)
      expect(metricValue(await bridge.metrics(), 'fleetstream_bridge_accepted_total')).toBe(50_000)
    } finally {
      expect(await bridge.stop()).toBe(0)
    }
  })

  it('loses nothing when the bridge is killed with SIGKILL mid-stream and a new one takes over its session', async () => {
    const { prefix, env } = externalEnv('kill')
    const devices = Array.from({ length: 20 }, (_, i) => `k${i}`)
    const first = await startBridgeProcess(env, 'bridge-kill-1')
    const publishing = publishAll(prefix, devices, 1000, Date.now() - 120_000)
    // Kill it once part of the stream is in Kafka.
    const early = await readRaw(env.FLEETSTREAM_TOPICS__RAW!, 4000, 60_000)
    expect(early.length).toBeGreaterThanOrEqual(4000)
    await first.stop('SIGKILL')
    await publishing // Mosquitto took every message from the devices
    const second = await startBridgeProcess(env, 'bridge-kill-2')
    try {
      const expected = devices.length * 1000
      // At least once: wait for every (device, seq), duplicates allowed.
      const log = testKafkaLog()
      const codec = await createTelemetryCodec(new LocalSchemaRegistry())
      const keys = new Set<string>()
      let total = 0
      try {
        await collect(
          log,
          { groupId: `k-${Date.now()}`, topics: [env.FLEETSTREAM_TOPICS__RAW!] },
          (recs) => {
            // Redelivered readings carry a new receivedAt, so compare (deviceId, seq), not bytes.
            for (; total < recs.length; total++) {
              const e = codec.type.fromBuffer(recs[total]!.value!.subarray(5)) as Telemetry
              keys.add(`${e.deviceId}/${e.seq}`)
            }
            return keys.size >= expected
          },
          120_000,
        )
        expect(keys.size).toBe(expected)
        process.stderr.write(
          `kill -9 test: ${total} records for ${expected} readings (${total - expected} duplicates, removed downstream by (deviceId, ts, seq))\n`,
        )
      } finally {
        await log.close()
      }
    } finally {
      await second.stop()
    }
  })
})
