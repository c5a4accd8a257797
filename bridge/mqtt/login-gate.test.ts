import { connect, type Socket } from 'node:net'
import mqtt, { type MqttClient } from 'mqtt'
import { tempDir } from '../../test/tmp'
import { registerDevices, startUp, upMetric, type Up } from '../../test/up-process'
import { LoginGate } from './login-gate'

describe('bridge > login gate', () => {
  it('admits at most max at once, the others in arrival order as slots free', () => {
    const gate = new LoginGate(2, 60_000)
    const admitted: number[] = []
    const releases = new Map<number, () => void>()
    for (let i = 0; i < 5; i++)
      gate.enter((release) => {
        admitted.push(i)
        releases.set(i, release)
      })
    expect(admitted).toEqual([0, 1])
    expect(gate.queued).toBe(3)
    releases.get(1)!()
    releases.get(1)!() // a second call frees nothing more
    expect(admitted).toEqual([0, 1, 2])
    releases.get(0)!()
    expect(admitted).toEqual([0, 1, 2, 3])
    releases.get(2)!()
    releases.get(3)!()
    expect(admitted).toEqual([0, 1, 2, 3, 4])
    expect(gate.queued).toBe(0)
  })

  it('skips a connection withdrawn while waiting; withdrawing after admission changes nothing', () => {
    const gate = new LoginGate(1, 60_000)
    const admitted: string[] = []
    let releaseA!: () => void
    const withdrawA = gate.enter((r) => (admitted.push('a'), (releaseA = r)))
    const withdrawB = gate.enter(() => admitted.push('b'))
    gate.enter(() => admitted.push('c'))
    withdrawB()
    withdrawA()
    expect(admitted).toEqual(['a'])
    releaseA()
    expect(admitted).toEqual(['a', 'c'])
  })

  it('frees a slot held longer than holdMs (a client that never logs in)', () => {
    jest.useFakeTimers()
    try {
      const gate = new LoginGate(1, 2000)
      const admitted: string[] = []
      gate.enter(() => admitted.push('silent'))
      gate.enter(() => admitted.push('device'))
      jest.advanceTimersByTime(1999)
      expect(admitted).toEqual(['silent'])
      jest.advanceTimersByTime(1)
      expect(admitted).toEqual(['silent', 'device'])
    } finally {
      jest.useRealTimers()
    }
  })

  it('passes thousands through, each once', () => {
    const gate = new LoginGate(3, 60_000)
    const held: (() => void)[] = []
    let admitted = 0
    for (let i = 0; i < 5000; i++) gate.enter((r) => (admitted++, held.push(r)))
    while (held.length > 0) held.shift()!()
    expect(admitted).toBe(5000)
    expect(gate.queued).toBe(0)
  })
})

describe('bridge > login gate in the embedded broker', () => {
  let up: Up | undefined
  afterAll(async () => {
    await up?.close()
  })

  it('lets a login storm through one at a time, past clients that never log in', async () => {
    const dataDir = tempDir('fs-login-gate-')
    const devices = await registerDevices(dataDir, 'gate-', 30)
    up = await startUp(dataDir, undefined, {
      FLEETSTREAM_BRIDGE__LIMITS__MAX_LOGINS_IN_FLIGHT: '1',
      FLEETSTREAM_BRIDGE__LIMITS__MAX_LOGIN_HOLD_MS: '300',
      FLEETSTREAM_BRIDGE__LIMITS__CONNECT_TIMEOUT_MS: '60000',
    })
    const port = up.listening.mqtt
    // Two connections that send nothing: each holds the only slot until freed after 300 ms.
    const silent = await Promise.all(
      [0, 1].map(
        () =>
          new Promise<Socket>((resolve, reject) => {
            const s = connect(port, '127.0.0.1', () => resolve(s))
            s.once('error', reject)
          }),
      ),
    )
    const waiting: number[] = []
    let storming = true
    const watch = (async () => {
      while (storming) {
        waiting.push(await upMetric(up!, 'fleetstream_bridge_logins_waiting'))
        await new Promise((r) => setTimeout(r, 20))
      }
    })()
    const clients: MqttClient[] = []
    try {
      clients.push(
        ...(await Promise.all(
          devices.map((d) =>
            mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
              clientId: d.deviceId,
              username: d.deviceId,
              password: d.token,
              reconnectPeriod: 0,
              connectTimeout: 30_000,
            }),
          ),
        )),
      )
      storming = false
      await watch
      // Every device logged in and is acknowledged, long before the silent ones time out (60 s).
      await Promise.all(
        clients.map((c, i) =>
          c.publishAsync(`devices/${devices[i]!.deviceId}/telemetry`, JSON.stringify({ t: 1 }), { qos: 1 }),
        ),
      )
      expect(silent.every((s) => !s.destroyed)).toBe(true)
      // Devices queued behind the slot while it was held; none are left waiting.
      expect(Math.max(...waiting)).toBeGreaterThan(0)
      expect(await upMetric(up, 'fleetstream_bridge_logins_waiting')).toBe(0)
      expect(await upMetric(up, 'fleetstream_bridge_connections')).toBe(32)
    } finally {
      storming = false
      await Promise.all(clients.map((c) => c.endAsync()))
      for (const s of silent) s.destroy()
    }
  }, 120_000)
})
