import { execFileSync } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import path from 'node:path'
import { addDevices, bridgeTestEnv, startBridgeProcess, type BridgeProcess } from '../test/bridge-process'
import { collect, testKafkaLog } from '../test/kafka'
import { connectMqtt } from '../test/mqtt'
import { tempDir } from '../test/tmp'

describe('bridge > MQTT over WebSocket and TLS [kafka]', () => {
  let bridge: BridgeProcess
  let tokens: Map<string, string>
  let dir: string
  let env: Record<string, string>

  beforeAll(async () => {
    // A self-signed certificate for 127.0.0.1, made here with Debian's openssl.
    dir = tempDir('fs-tls-')
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        path.join(dir, 'key.pem'),
        '-out',
        path.join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    )
    env = bridgeTestEnv('transports', {
      FLEETSTREAM_BRIDGE__MQTT__WS_PORT: '0',
      FLEETSTREAM_BRIDGE__MQTT__TLS: `{port: 0, certFile: ${path.join(dir, 'cert.pem')}, keyFile: ${path.join(dir, 'key.pem')}}`,
    })
    tokens = await addDevices(env, ['tr-1'])
    bridge = await startBridgeProcess(env, 'bridge-transports')
  })
  afterAll(async () => {
    await bridge?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('acknowledges QoS 1 over WebSocket and over TLS only once the readings are in Kafka', async () => {
    const auth = { username: 'tr-1', password: tokens.get('tr-1'), protocolVersion: 4 as const }
    const ws = await connectMqtt(`ws://127.0.0.1:${bridge.listening.mqttWs}`, { ...auth, clientId: 'tr-ws' })
    await ws.publishAsync('devices/tr-1/telemetry', JSON.stringify({ seq: 1, v: 1 }), { qos: 1 })
    await ws.endAsync()
    const tls = await connectMqtt(`mqtts://127.0.0.1:${bridge.listening.mqttTls}`, {
      ...auth,
      clientId: 'tr-tls',
      ca: readFileSync(path.join(dir, 'cert.pem')),
    })
    await tls.publishAsync('devices/tr-1/telemetry', JSON.stringify({ seq: 2, v: 2 }), { qos: 1 })
    await tls.endAsync()
    // TLS with a certificate the client does not trust is refused by the client.
    await expect(
      connectMqtt(`mqtts://127.0.0.1:${bridge.listening.mqttTls}`, { ...auth, clientId: 'tr-untrusted' }),
    ).rejects.toThrow(/self.signed|certificate/i)

    const log = testKafkaLog()
    try {
      const recs = await collect(
        log,
        { groupId: `tr-${Date.now()}`, topics: [env.FLEETSTREAM_TOPICS__RAW!] },
        (r) => r.length >= 2,
      )
      expect(recs.map((r) => r.key)).toEqual(['tr-1', 'tr-1'])
    } finally {
      await log.close()
    }
  })
})
