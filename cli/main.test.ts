import { spawnSync } from 'node:child_process'
import path from 'node:path'

const BIN = path.resolve(__dirname, '../bin/fleetstream.js')

function run(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, ...env },
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe('cli > fleetstream', () => {
  it('config check prints the validated configuration with secrets redacted', () => {
    const r = run(['config', 'check'], {
      FLEETSTREAM_KAFKA__BROKERS: 'k1:9092,k2:9092',
      FLEETSTREAM_KAFKA__SASL: '{mechanism: plain, username: svc, password: hunter2}',
    })
    expect(r.code).toBe(0)
    const cfg = JSON.parse(r.stdout)
    expect(cfg.kafka.brokers).toEqual(['k1:9092', 'k2:9092'])
    expect(cfg.kafka.sasl).toEqual({ mechanism: 'plain', username: 'svc', password: '[redacted]' })
    expect(r.stdout).not.toContain('hunter2')
  })

  it('a bad configuration exits 2 with the code and every bad key, no stack trace', () => {
    const r = run(['config', 'check'], {
      FLEETSTREAM_TOPICS__PARTITIONS: 'x',
      FLEETSTREAM_KAFKA__BROKERZ: 'a:1',
    })
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/FS_CORE_CONFIG/)
    expect(r.stderr).toMatch(/topics\.partitions \(environment variable FLEETSTREAM_TOPICS__PARTITIONS\)/)
    expect(r.stderr).toMatch(
      /kafka\.brokerz \(environment variable FLEETSTREAM_KAFKA__BROKERZ\): unknown key/,
    )
    expect(r.stderr).not.toMatch(/at .*\.ts:\d+/)
  })

  it('an unknown command is refused with help', () => {
    const r = run(['frobnicate'])
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/unknown command/)
  })
})
