import mqtt, { type MqttClient } from 'mqtt'
import { LocalSchemaRegistry } from '../core/envelope/registry'
import { createTelemetryCodec, type Telemetry } from '../core/envelope/telemetry'
import { kafkaConfig } from '../core/config/schema'
import { KafkaEventLog } from '../core/kafka/kafkajs-log'
import {
  addDevices,
  bridgeTestEnv,
  metricValue,
  startBridgeProcess,
  type BridgeProcess,
} from '../test/bridge-process'
import { collect, testLogger, within } from '../test/kafka'
import { ownKafka } from '../test/own-kafka'

// A broker of this test's own, so stopping it disturbs no other test.
const broker = ownKafka('durability', 19392)
const BROKERS = broker.brokers

describe('bridge > durability: the Kafka broker stops mid-stream [kafka]', () => {
  let bridge: BridgeProcess
  const env = bridgeTestEnv('durable', {
    FLEETSTREAM_KAFKA__BROKERS: BROKERS,
    FLEETSTREAM_BRIDGE__WRITER__ACK_TIMEOUT_MS: '3000',
  })

  beforeAll(async () => {
    broker.wipe()
    broker.start()
  })
  afterAll(async () => {
    await bridge?.stop()
    broker.stop()
    broker.wipe()
  })

  it('every message a device saw acknowledged is in Kafka, and the bridge recovers without a restart', async () => {
    const devices = Array.from({ length: 10 }, (_, i) => `dur-${i}`)
    const tokens = await addDevices(env, devices)
    bridge = await startBridgeProcess(env, 'bridge-durability')
    const pid = bridge.proc.pid
    const acked = new Set<string>()
    const t0 = Date.now() - 60_000
    const PER_DEVICE = 400
    // Devices that reconnect and resend what was not acknowledged, as MQTT clients do.
    const clients: MqttClient[] = await Promise.all(
      devices.map(
        (d) =>
          new Promise<MqttClient>((resolve) => {
            const c = mqtt.connect(`mqtt://127.0.0.1:${bridge.mqttPort}`, {
              username: d,
              password: tokens.get(d),
              clientId: `c-${d}`,
              clean: false,
              reconnectPeriod: 300,
              protocolVersion: 4,
            })
            c.once('connect', () => resolve(c))
          }),
      ),
    )
    const publishing = Promise.all(
      clients.map(async (c, i) => {
        for (let s = 0; s < PER_DEVICE; s += 20) {
          await Promise.all(
            Array.from({ length: 20 }, (_, k) =>
              c
                .publishAsync(
                  `devices/${devices[i]}/telemetry`,
                  JSON.stringify({ ts: t0 + s + k, seq: s + k, v: 1 }),
                  { qos: 1 },
                )
                .then(() => acked.add(`${devices[i]}/${s + k}`)),
            ),
          )
          await new Promise((r) => setTimeout(r, 5))
        }
      }),
    )
    // Stop the broker once part of the stream is acknowledged; start it again a few seconds later.
    while (acked.size < 1000) await new Promise((r) => setTimeout(r, 20))
    broker.stop()
    const ackedWhileDown = acked.size
    await new Promise((r) => setTimeout(r, 5000))
    const gainedWhileDown = acked.size - ackedWhileDown
    broker.start()
    await within(publishing, 150_000)
    await Promise.all(clients.map((c) => c.endAsync()))
    expect(acked.size).toBe(devices.length * PER_DEVICE)
    // Nothing was acknowledged while the broker was down beyond writes already confirmed when it stopped.
    expect(gainedWhileDown).toBeLessThanOrEqual(200)

    const log = new KafkaEventLog(kafkaConfig.parse({ brokers: BROKERS }), testLogger('durability'))
    try {
      const codec = await createTelemetryCodec(new LocalSchemaRegistry())
      const keys = new Set<string>()
      let n = 0
      await collect(
        log,
        { groupId: `d-${Date.now()}`, topics: [env.FLEETSTREAM_TOPICS__RAW!] },
        (recs) => {
          for (; n < recs.length; n++) {
            const e = codec.type.fromBuffer(recs[n]!.value!.subarray(5)) as Telemetry
            keys.add(`${e.deviceId}/${e.seq}`)
          }
          return keys.size >= acked.size
        },
        60_000,
      )
      for (const k of acked) expect(keys.has(k)).toBe(true)
      process.stderr.write(
        `durability test: ${acked.size} acknowledged, ${keys.size} distinct in Kafka, ${n} records, ${gainedWhileDown} acks while the broker was down\n`,
      )
    } finally {
      await log.close()
    }
    expect(bridge.proc.pid).toBe(pid)
    expect(bridge.proc.exitCode).toBeNull()
    const m = await bridge.metrics()
    expect(metricValue(m, 'fleetstream_bridge_pushback_total')).toBeGreaterThan(0)
  })
})
