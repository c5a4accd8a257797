import { spawnSync } from 'node:child_process'
import path from 'node:path'
import mqtt from 'mqtt'
import { addDevices, bridgeTestEnv, startBridgeProcess } from '../test/bridge-process'
import { testKafkaLog } from '../test/kafka'

const BIN = path.resolve(__dirname, '../bin/fleetstream.js')

describe('bridge > deadletter replay [kafka]', () => {
  it('re-ingests refused messages after a fix, once, and refuses again what is still bad', async () => {
    const env = bridgeTestEnv('replay')
    const tokens = await addDevices(env, ['rp-1'])
    const bridge = await startBridgeProcess(env, 'bridge-replay')
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${bridge.mqttPort}`, {
      username: 'rp-1',
      password: tokens.get('rp-1'),
      protocolVersion: 4,
      reconnectPeriod: 0,
    })
    const t = Date.now() - 60_000
    for (let i = 0; i < 3; i++)
      await c.publishAsync('devices/rp-1/telemetry', JSON.stringify({ ts: t + i, seq: i, v: i }), { qos: 1 })
    // A topic the configuration does not know yet: dead-lettered.
    for (let i = 3; i < 8; i++)
      await c.publishAsync('sensors/rp-1/data', JSON.stringify({ ts: t + i, seq: i, v: i }), { qos: 1 })
    await c.publishAsync('devices/rp-1/telemetry', '{"v":', { qos: 1 }) // malformed: stays bad
    await c.endAsync()
    expect(await bridge.stop()).toBe(0)

    // The fix: a second topic template. Then replay.
    const fixed = {
      PATH: process.env.PATH!,
      ...env,
      FLEETSTREAM_BRIDGE__TOPICS__TELEMETRY: 'devices/{deviceId}/telemetry,sensors/{deviceId}/data',
    }
    const run = () => {
      const r = spawnSync(
        process.execPath,
        [BIN, 'deadletter', 'replay', '--group', `replay-${env.FLEETSTREAM_TOPICS__RAW}`],
        { env: fixed, encoding: 'utf8', timeout: 120_000 },
      )
      expect(r.status).toBe(0)
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number>
    }
    expect(run()).toEqual({ read: 6, replayed: 6, accepted: 5, refusedAgain: 1, skipped: 0 })
    // A second run replays only what was added since: the malformed message, refused once more.
    expect(run()).toEqual({ read: 1, replayed: 1, accepted: 0, refusedAgain: 1, skipped: 0 })

    const log = testKafkaLog()
    const admin = await log.admin()
    try {
      const sum = async (topic: string) =>
        [...(await admin.endOffsets(topic)).values()].reduce((a, o) => a + Number(o), 0)
      expect(await sum(env.FLEETSTREAM_TOPICS__RAW!)).toBe(8)
      expect(await sum(env.FLEETSTREAM_TOPICS__DEADLETTER!)).toBe(8)
    } finally {
      await admin.close()
      await log.close()
    }
  })
})
