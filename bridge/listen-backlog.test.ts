import { execFileSync } from 'node:child_process'
import { tempDir } from '../test/tmp'
import { startUp } from '../test/up-process'
import { bridgeRoleConfig } from './config'

/** The backlog of the listening TCP socket on `port`, as the kernel reports it (`ss`: Send-Q). */
function listenBacklog(port: number): number {
  const line = execFileSync('ss', ['-ltnH', `sport = :${port}`])
    .toString()
    .trim()
    .split('\n')[0]!
  return Number(line.trim().split(/\s+/)[2])
}

describe('bridge > listeners', () => {
  it('listen with the configured backlog (MQTT and HTTP)', async () => {
    // `up` on its embedded log (the bridge needs no Kafka there; aedes only loads in a process).
    const up = await startUp(tempDir('fs-backlog-'), undefined, {
      FLEETSTREAM_BRIDGE__LIMITS__LISTEN_BACKLOG: '1234',
    })
    try {
      expect(listenBacklog(up.listening.mqtt)).toBe(1234)
      expect(listenBacklog(up.listening.http)).toBe(1234)
    } finally {
      await up.close()
    }
  }, 60_000)

  it('default to a backlog of 4096 (Node: 511), capped by the kernel at net.core.somaxconn', () => {
    expect(bridgeRoleConfig.parse({}).bridge.limits.listenBacklog).toBe(4096)
  })
})
