import type { IClientOptions, MqttClient } from 'mqtt'
import { connectMqtt } from '../test/mqtt'
import { pack } from 'msgpackr'
import { LocalSchemaRegistry } from '../core/envelope/registry'
import { createTelemetryCodec } from '../core/envelope/telemetry'
import { encodeWire } from '../core/envelope/wire'
import {
  addDevices,
  bridgeTestEnv,
  metricValue,
  startBridgeProcess,
  type BridgeProcess,
} from '../test/bridge-process'
import { collect, testKafkaLog } from '../test/kafka'
import { DLQ_HEADERS } from './ingest/pipeline'

const NOW = () => Date.now()

function connect(port: number, opts: IClientOptions): Promise<MqttClient> {
  return connectMqtt(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, connectTimeout: 5000, ...opts })
}

/** Waits for a connection to be closed by the broker. */
function closedBy(c: MqttClient): Promise<void> {
  return new Promise((r) => (c.disconnected ? r() : c.once('close', () => r())))
}

describe('bridge > bad input: refused or dead-lettered, counted, never fatal [kafka]', () => {
  let bridge: BridgeProcess
  let tokens: Map<string, string>
  const env = bridgeTestEnv('badinput', {
    FLEETSTREAM_BRIDGE__LIMITS__MAX_PAYLOAD_BYTES: '4096',
    FLEETSTREAM_BRIDGE__LIMITS__MAX_METRICS: '16',
    FLEETSTREAM_BRIDGE__LIMITS__MAX_READINGS_PER_MESSAGE: '50',
    FLEETSTREAM_BRIDGE__LIMITS__MAX_TOPIC_LEVELS: '8',
    FLEETSTREAM_BRIDGE__LIMITS__MAX_STRING_BYTES: '256',
    FLEETSTREAM_BRIDGE__DRIFT: 'reject',
  })

  beforeAll(async () => {
    tokens = await addDevices(env, ['dev-a', 'dev-b'])
    bridge = await startBridgeProcess(env, 'bridge-bad-input')
  })
  afterAll(async () => {
    await bridge?.stop()
  })

  it('answers every bad input as documented, with a reason in the dead-letter topic and a counter, and stays up', async () => {
    const codec = await createTelemetryCodec(new LocalSchemaRegistry())
    const t = NOW()
    const own = 'devices/dev-a/telemetry'
    // Table: what dev-a publishes at QoS 1, and the reason code its dead-letter record must carry.
    // Each is acknowledged (after its dead-letter record is durable) so a device never resends poison forever.
    const mqttCases: { name: string; topic?: string; payload: Buffer | string; code: string }[] = [
      { name: 'truncated JSON', payload: '{"t":', code: 'FS_BRIDGE_DECODE' },
      { name: 'JSON with trailing garbage', payload: '{"t":1}}', code: 'FS_BRIDGE_DECODE' },
      { name: 'malformed MessagePack', payload: Buffer.from([0xc1, 0x00]), code: 'FS_BRIDGE_DECODE' },
      { name: 'empty payload', payload: Buffer.alloc(0), code: 'FS_BRIDGE_DECODE' },
      { name: 'unclosed XML', payload: '<reading><t>1</t>', code: 'FS_BRIDGE_DECODE' },
      {
        name: 'XML entity bomb',
        payload: '<!DOCTYPE r [<!ENTITY a "aaaaaaaa">]><reading><t>&a;</t></reading>',
        code: 'FS_BRIDGE_DECODE',
      },
      { name: 'XML with two roots', payload: '<a>1</a><b>2</b>', code: 'FS_BRIDGE_DECODE' },
      {
        name: 'Avro with an unregistered schema id',
        payload: encodeWire(4242, Buffer.from([2, 4])),
        code: 'FS_BRIDGE_SCHEMA',
      },
      {
        name: 'Avro with a truncated body',
        payload: encodeWire(codec.schemaId, Buffer.from([2])),
        code: 'FS_BRIDGE_DECODE',
      },
      {
        name: 'a nested object as a metric',
        payload: JSON.stringify({ ts: t, t: { x: 1 } }),
        code: 'FS_BRIDGE_TYPE',
      },
      { name: 'an array as a metric', payload: JSON.stringify({ ts: t, t: [1, 2] }), code: 'FS_BRIDGE_TYPE' },
      { name: 'a null metric', payload: JSON.stringify({ ts: t, t: null }), code: 'FS_BRIDGE_TYPE' },
      { name: 'a JSON string', payload: '"hello"', code: 'FS_BRIDGE_TYPE' },
      { name: 'a MessagePack number', payload: pack(42), code: 'FS_BRIDGE_TYPE' },
      { name: 'a negative seq', payload: JSON.stringify({ ts: t, seq: -3, t: 1 }), code: 'FS_BRIDGE_TYPE' },
      { name: 'an empty object', payload: '{}', code: 'FS_BRIDGE_EMPTY' },
      { name: 'an empty list', payload: '[]', code: 'FS_BRIDGE_EMPTY' },
      {
        name: 'an empty batch',
        payload: JSON.stringify({ deviceinfo: { deviceid: 'dev-a' }, tsdata: [] }),
        code: 'FS_BRIDGE_EMPTY',
      },
      {
        name: 'a payload over the size limit',
        payload: JSON.stringify({ ts: t, s: 'x'.repeat(5000) }),
        code: 'FS_BRIDGE_TOO_LARGE',
      },
      {
        name: 'too many metrics',
        payload: JSON.stringify(Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`m${i}`, i]))),
        code: 'FS_BRIDGE_LIMIT',
      },
      {
        name: 'too many readings',
        payload: JSON.stringify(Array.from({ length: 51 }, () => ({ t: 1 }))),
        code: 'FS_BRIDGE_LIMIT',
      },
      {
        name: 'a string metric over the limit',
        payload: JSON.stringify({ ts: t, s: 'y'.repeat(300) }),
        code: 'FS_BRIDGE_LIMIT',
      },
      {
        name: 'a bad metric name',
        payload: JSON.stringify({ ts: t, 'drop table x': 1 }),
        code: 'FS_BRIDGE_DECODE',
      },
      {
        name: 'a timestamp an hour ahead',
        payload: JSON.stringify({ ts: t + 3_600_000, t: 1 }),
        code: 'FS_BRIDGE_TIMESTAMP',
      },
      {
        name: 'a timestamp before 2000',
        payload: JSON.stringify({ ts: 86_400, t: 1 }),
        code: 'FS_BRIDGE_TIMESTAMP',
      },
      {
        name: 'an unreadable timestamp',
        payload: JSON.stringify({ ts: 'yesterday', t: 1 }),
        code: 'FS_BRIDGE_TIMESTAMP',
      },
      {
        name: "another device's id in the payload",
        payload: JSON.stringify({ deviceId: 'dev-b', t: 1 }),
        code: 'FS_BRIDGE_FORBIDDEN',
      },
      {
        name: "another device's id in a batch",
        payload: JSON.stringify({ deviceinfo: { deviceid: 'dev-b' }, tsdata: [{ t: 1 }] }),
        code: 'FS_BRIDGE_FORBIDDEN',
      },
      {
        name: "another device's topic",
        topic: 'devices/dev-b/telemetry',
        payload: '{"t":1}',
        code: 'FS_BRIDGE_FORBIDDEN',
      },
      { name: 'an unknown topic', topic: 'sensors/dev-a/data', payload: '{"t":1}', code: 'FS_BRIDGE_TOPIC' },
      {
        name: 'a 12-level topic',
        topic: 'devices/dev-a/telemetry/a/b/c/d/e/f/g/h/i',
        payload: '{"t":1}',
        code: 'FS_BRIDGE_TOPIC',
      },
      {
        name: 'a metric that changes type (drift policy reject)',
        payload: JSON.stringify({ ts: t - 1, temp: 'hot' }),
        code: 'FS_BRIDGE_DRIFT',
      },
    ]

    const a = await connect(bridge.mqttPort, {
      username: 'dev-a',
      password: tokens.get('dev-a'),
      clientId: 'bad-a',
    })
    await a.publishAsync(own, JSON.stringify({ ts: t - 2, temp: 21.5 }), { qos: 1 }) // teaches the drift check "temp is a number"
    for (const c of mqttCases) {
      await a.publishAsync(c.topic ?? own, typeof c.payload === 'string' ? c.payload : c.payload, { qos: 1 })
    }

    // A topic over aedes's own 100-level limit: refused and the connection closed, dead-lettered, counted.
    const deep = await connect(bridge.mqttPort, {
      username: 'dev-a',
      password: tokens.get('dev-a'),
      clientId: 'bad-deep',
    })
    deep.publish(Array.from({ length: 1000 }, () => 'x').join('/'), '{"t":1}', { qos: 1 })
    await closedBy(deep)
    deep.end(true)
    // A packet over the hard cap (4 × 4096 bytes): the connection is closed before the broker buffers it.
    const big = await connect(bridge.mqttPort, {
      username: 'dev-a',
      password: tokens.get('dev-a'),
      clientId: 'bad-big',
    })
    big.publish(own, Buffer.alloc(20_000, 0x20), { qos: 1 })
    await closedBy(big)
    big.end(true)

    // Connect-level refusals: counted, nothing to dead-letter.
    await expect(
      connect(bridge.mqttPort, { username: 'dev-a', password: 'wrong', clientId: 'bad-pw' }),
    ).rejects.toThrow(/Bad username or password/)
    await expect(connect(bridge.mqttPort, { clientId: 'anon' })).rejects.toThrow(/Not authorized/)
    await expect(
      connect(bridge.mqttPort, { username: 'ghost', password: 'x', clientId: 'ghost' }),
    ).rejects.toThrow(/Bad username or password/)
    // Subscribing to another device's downlink: SUBACK 0x80, connection kept.
    // (mqtt.js reports a SUBACK of 0x80 as an error)
    await expect(a.subscribeAsync('devices/dev-b/downlink', { qos: 1 })).rejects.toThrow(/Subscribe error/)
    const grantedOwn = await a.subscribeAsync('devices/dev-a/downlink', { qos: 1 })
    expect(grantedOwn[0]!.qos).toBe(1)

    // HTTP
    const http = `http://127.0.0.1:${bridge.httpPort}`
    const basic = (id: string, tok: string) => `Basic ${Buffer.from(`${id}:${tok}`).toString('base64')}`
    const post = (path: string, body: string | Buffer, headers: Record<string, string> = {}) =>
      fetch(`${http}${path}`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json', ...headers },
      })
    const authA = { authorization: basic('dev-a', tokens.get('dev-a')!) }

    const malformed = await post('/v1/telemetry', '{"t":', authA)
    expect(malformed.status).toBe(400)
    expect(((await malformed.json()) as { rejected: { code: string }[] }).rejected[0]!.code).toBe(
      'FS_BRIDGE_DECODE',
    )
    const xmlMislabelled = await post('/v1/telemetry', '{"t":1}', {
      ...authA,
      'content-type': 'application/xml',
    })
    expect(xmlMislabelled.status).toBe(400)
    expect(((await xmlMislabelled.json()) as { rejected: { code: string }[] }).rejected[0]!.code).toBe(
      'FS_BRIDGE_DECODE',
    )
    const noAuth = await post('/v1/telemetry', '{"t":1}')
    expect(noAuth.status).toBe(401)
    expect(noAuth.headers.get('www-authenticate')).toMatch(/Basic/)
    expect((await post('/v1/telemetry', '{"t":1}', { authorization: basic('dev-a', 'wrong') })).status).toBe(
      401,
    )
    expect(
      (await post('/v1/telemetry', '{"t":1}', { authorization: 'Bearer wrong', 'x-device-id': 'dev-a' }))
        .status,
    ).toBe(401)
    const cross = await post('/insert/dev-b', '{"t":1}', authA)
    expect(cross.status).toBe(403)
    expect(((await cross.json()) as { error: { code: string } }).error.code).toBe('FS_BRIDGE_FORBIDDEN')
    const huge = await post('/v1/telemetry', Buffer.alloc(20_000, 0x20), authA)
    expect(huge.status).toBe(413)

    // The process is still up and still takes good data, on both protocols.
    expect((await fetch(`${http}/healthz`)).status).toBe(200)
    await a.publishAsync(own, JSON.stringify({ ts: NOW(), temp: 22 }), { qos: 1 })
    const good = await post(
      '/insert/dev-a',
      JSON.stringify({ deviceinfo: { deviceid: 'dev-a' }, tsdata: [{ timestamp: NOW(), temp: 23 }] }),
      authA,
    )
    expect(good.status).toBe(200)
    expect(await good.json()).toEqual({ accepted: 1, duplicates: 0, rejected: [] })
    await a.endAsync()

    // Dead-letter topic: dev-a's records arrive in order (one partition per key).
    const expectedMqtt = mqttCases.map((c) => c.code)
    const expectedAll = [
      ...expectedMqtt,
      'FS_BRIDGE_TOPIC',
      /* deep topic */ 'FS_BRIDGE_DECODE',
      'FS_BRIDGE_DECODE',
      'FS_BRIDGE_FORBIDDEN',
    ]
    const log = testKafkaLog()
    let dlq
    try {
      dlq = await collect(
        log,
        { groupId: `dlq-${Date.now()}`, topics: [env.FLEETSTREAM_TOPICS__DEADLETTER!] },
        (r) => r.length >= expectedAll.length + 2,
        60_000,
      )
    } finally {
      await log.close()
    }
    const fromA = dlq.filter((r) => r.key === 'dev-a')
    const mqttCodes = fromA
      .filter((r) => r.headers[DLQ_HEADERS.source]?.toString() === 'mqtt')
      .map((r) => r.headers[DLQ_HEADERS.code]!.toString())
    expect(mqttCodes).toEqual([...expectedMqtt, 'FS_BRIDGE_TOPIC'])
    const httpCodes = fromA
      .filter((r) => r.headers[DLQ_HEADERS.source]?.toString() === 'http')
      .map((r) => r.headers[DLQ_HEADERS.code]!.toString())
    expect(httpCodes).toEqual(['FS_BRIDGE_DECODE', 'FS_BRIDGE_DECODE', 'FS_BRIDGE_FORBIDDEN'])
    // Original bytes are kept: the truncated JSON case is the first record.
    const first = fromA.find((r) => r.headers[DLQ_HEADERS.code]!.toString() === 'FS_BRIDGE_DECODE')!
    expect(first.value!.toString()).toBe('{"t":')
    expect(first.headers[DLQ_HEADERS.reason]!.toString()).toMatch(/malformed JSON/)
    // The two oversized messages (MQTT packet, HTTP body) come from a device not yet known.
    const unknown = dlq.filter((r) => r.key === 'unknown').map((r) => r.headers[DLQ_HEADERS.code]!.toString())
    expect(unknown).toEqual(['FS_BRIDGE_TOO_LARGE', 'FS_BRIDGE_TOO_LARGE'])

    // Counters: every refusal is counted by reason.
    const m = await bridge.metrics()
    const count = (reason: string) => metricValue(m, 'fleetstream_bridge_rejected_total', { reason })
    for (const code of new Set(expectedAll)) {
      expect(count(code)).toBe(
        expectedAll.filter((c) => c === code).length + (code === 'FS_BRIDGE_TOO_LARGE' ? 2 : 0),
      )
    }
    expect(
      metricValue(m, 'fleetstream_bridge_auth_failures_total', { source: 'mqtt', reason: 'bad_credentials' }),
    ).toBe(2)
    expect(
      metricValue(m, 'fleetstream_bridge_auth_failures_total', { source: 'mqtt', reason: 'anonymous' }),
    ).toBe(1)
    expect(
      metricValue(m, 'fleetstream_bridge_auth_failures_total', {
        source: 'mqtt',
        reason: 'subscribe_forbidden',
      }),
    ).toBe(1)
    expect(metricValue(m, 'fleetstream_bridge_auth_failures_total', { source: 'http' })).toBe(4)
    expect(metricValue(m, 'fleetstream_bridge_accepted_total')).toBe(3)
    expect(bridge.proc.exitCode).toBeNull()
  })
})
