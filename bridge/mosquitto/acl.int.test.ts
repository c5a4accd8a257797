import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import type { MqttClient } from 'mqtt'
import { connectMqtt } from '../../test/mqtt'
import { within } from '../../test/kafka'
import { tempDir } from '../../test/tmp'

const PORT = 11984

function connect(username: string, password: string): Promise<MqttClient> {
  return connectMqtt(`mqtt://127.0.0.1:${PORT}`, {
    username,
    password,
    clientId: `${username}-${Date.now()}`,
    protocolVersion: 5,
  })
}

// The shipped bridge/mosquitto/acl, in a real Mosquitto (the Debian package the harness installs).
describe('bridge > mosquitto > shipped ACL gives each device only its own topics [mosquitto]', () => {
  let dir: string
  let broker: ChildProcess
  const clients: MqttClient[] = []

  beforeAll(async () => {
    dir = tempDir('fs-mosq-acl-')
    copyFileSync(path.join(__dirname, 'acl'), path.join(dir, 'acl'))
    execFileSync('mosquitto_passwd', [
      '-b',
      '-c',
      path.join(dir, 'passwd'),
      'fleetstream-bridge',
      'bridge-secret',
    ])
    execFileSync('mosquitto_passwd', ['-b', path.join(dir, 'passwd'), 'dev-1', 'token-1'])
    execFileSync('mosquitto_passwd', ['-b', path.join(dir, 'passwd'), 'dev-2', 'token-2'])
    // The shipped settings, with this test's paths and port.
    const conf = readFileSync(path.join(__dirname, 'mosquitto.conf'), 'utf8')
      .replace('/etc/mosquitto/fleetstream/passwd', path.join(dir, 'passwd'))
      .replace('/etc/mosquitto/fleetstream/acl', path.join(dir, 'acl'))
      .replace('listener 1883', `listener ${PORT} 127.0.0.1`)
      .replace('persistence true', 'persistence false')
    writeFileSync(
      path.join(dir, 'mosquitto.conf'),
      `${conf}\n${process.getuid?.() === 0 ? 'user root\n' : ''}`,
    )
    broker = spawn('mosquitto', ['-c', path.join(dir, 'mosquitto.conf')], { stdio: 'ignore' })
    for (let i = 0; i < 50; i++) {
      try {
        clients.push(await connect('dev-1', 'token-1'))
        return
      } catch {
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    throw new Error('mosquitto with the shipped config did not start')
  })

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync()))
    broker?.kill()
    rmSync(dir, { recursive: true, force: true })
  })

  it('delivers a device its own telemetry path to the bridge, and refuses impersonation', async () => {
    const dev1 = clients[0]!
    const bridge = await connect('fleetstream-bridge', 'bridge-secret')
    clients.push(bridge)
    const got: string[] = []
    bridge.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`))
    await bridge.subscribeAsync('$share/fleetstream/devices/+/telemetry', { qos: 1 })

    await dev1.publishAsync('devices/dev-1/telemetry', 'own', { qos: 1 })
    // Publishing as dev-2: refused with PUBACK reason 0x87 (not authorized), never delivered.
    await expect(dev1.publishAsync('devices/dev-2/telemetry', 'forged', { qos: 1 })).rejects.toThrow(
      /Not authorized|135/,
    )
    await within(
      new Promise<void>((r) => {
        const t = setInterval(() => got.length >= 1 && (clearInterval(t), r()), 20)
      }),
      5000,
    )
    await new Promise((r) => setTimeout(r, 300))
    expect(got).toEqual(['devices/dev-1/telemetry own'])
  })

  it('lets a device read only its own downlink, and the bridge write to it', async () => {
    const dev2 = await connect('dev-2', 'token-2')
    clients.push(dev2)
    const got: string[] = []
    dev2.on('message', (topic) => got.push(topic))
    await dev2.subscribeAsync('devices/dev-2/downlink', { qos: 1 })
    // Mosquitto 2.0 may grant the subscription; its read ACL stops delivery (checked below).
    await dev2.subscribeAsync('devices/dev-1/downlink', { qos: 1 }).catch(() => undefined)
    const bridge = await connect('fleetstream-bridge', 'bridge-secret')
    clients.push(bridge)
    await bridge.publishAsync('devices/dev-2/downlink', 'cmd', { qos: 1 })
    await bridge.publishAsync('devices/dev-1/downlink', 'cmd', { qos: 1 })
    await new Promise((r) => setTimeout(r, 300))
    expect(got).toEqual(['devices/dev-2/downlink'])
  })

  it('refuses a device that is not in the password file', async () => {
    await expect(connect('dev-3', 'whatever')).rejects.toThrow(/Bad User Name or Password|Not authorized/i)
  })
})
