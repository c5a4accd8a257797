import type { MqttClient } from 'mqtt'
import { connectMqtt } from '../test/mqtt'
import { LocalSchemaRegistry } from '../core/envelope/registry'
import { createTelemetryCodec, type Telemetry } from '../core/envelope/telemetry'
import { partitionForKey } from '../core/kafka/murmur2'
import {
  addDevices,
  bridgeTestEnv,
  metricValue,
  startBridgeProcess,
  type BridgeProcess,
} from '../test/bridge-process'
import { collect, testKafkaLog } from '../test/kafka'

const DEVICES = 100
const PER_DEVICE = 500

function connect(port: number, username: string, password: string): Promise<MqttClient> {
  return connectMqtt(`mqtt://127.0.0.1:${port}`, {
    username,
    password,
    protocolVersion: 4,
    clientId: `${username}-${process.pid}`,
  })
}

describe('bridge > embedded MQTT into Kafka [kafka]', () => {
  let bridge: BridgeProcess
  let tokens: Map<string, string>
  const env = bridgeTestEnv('embedded')
  const ids = Array.from({ length: DEVICES }, (_, i) => `emb-${String(i).padStart(3, '0')}`)

  beforeAll(async () => {
    tokens = await addDevices(env, ids)
    bridge = await startBridgeProcess(env, 'bridge-embedded')
  })
  afterAll(async () => {
    expect(await bridge?.stop()).toBe(0) // drains and exits cleanly on SIGTERM
  })

  it(`acknowledges ${DEVICES} devices × ${PER_DEVICE} QoS 1 readings only once durable: exactly ${DEVICES * PER_DEVICE} records, order kept, murmur2 partitions`, async () => {
    const t0 = Date.now() - 60_000
    const clients = await Promise.all(ids.map((id) => connect(bridge.mqttPort, id, tokens.get(id)!)))
    let acked = 0
    await Promise.all(
      clients.map(async (c, d) => {
        // Up to 50 unacknowledged messages per device, as a device with a send window would.
        for (let s = 0; s < PER_DEVICE; s += 50) {
          await Promise.all(
            Array.from({ length: Math.min(50, PER_DEVICE - s) }, (_, k) =>
              c
                .publishAsync(
                  `devices/${ids[d]}/telemetry`,
                  JSON.stringify({ ts: t0 + s + k, seq: s + k, temperature: 20 + ((s + k) % 10) }),
                  { qos: 1 },
                )
                .then(() => acked++),
            ),
          )
        }
      }),
    )
    await Promise.all(clients.map((c) => c.endAsync()))
    expect(acked).toBe(DEVICES * PER_DEVICE)

    // Every acknowledged message is already in Kafka: read them back.
    const log = testKafkaLog()
    try {
      const codec = await createTelemetryCodec(new LocalSchemaRegistry())
      const records = await collect(
        log,
        { groupId: `check-${Date.now()}`, topics: [env.FLEETSTREAM_TOPICS__RAW!] },
        (r) => r.length >= DEVICES * PER_DEVICE,
        120_000,
      )
      expect(records).toHaveLength(DEVICES * PER_DEVICE)
      const last = new Map<string, number>()
      for (const r of records) {
        const e: Telemetry = await codec.decode(r.value!)
        expect(r.key).toBe(e.deviceId)
        expect(r.partition).toBe(partitionForKey(e.deviceId, 6))
        expect(e.seq!).toBe((last.get(e.deviceId) ?? -1) + 1) // in order, none missing, none twice
        last.set(e.deviceId, e.seq!)
        expect(e.source).toBe('mqtt')
      }
      expect([...last.values()].every((s) => s === PER_DEVICE - 1)).toBe(true)
      expect(last.size).toBe(DEVICES)
    } finally {
      await log.close()
    }
    const m = await bridge.metrics()
    expect(metricValue(m, 'fleetstream_bridge_accepted_total', { source: 'mqtt' })).toBe(DEVICES * PER_DEVICE)
    expect(metricValue(m, 'fleetstream_bridge_deadletter_total')).toBe(0)
  })
})
