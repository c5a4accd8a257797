import { spawnSync } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import path from 'node:path'
import { tempDir } from '../tmp'

const SCRIPT = path.resolve(__dirname, '../../scripts/servers.sh')

function harness(args: string[], env: Record<string, string>) {
  const r = spawnSync('bash', [SCRIPT, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 120_000,
  })
  return { code: r.status, out: `${r.stdout}${r.stderr}` }
}

describe('test > servers > harness fails loudly [kafka]', () => {
  let runDir: string

  beforeAll(() => {
    runDir = tempDir('fs-harness-')
  })

  afterAll(() => {
    harness(['stop', 'kafka'], { FLEETSTREAM_RUN_DIR: runDir })
    rmSync(runDir, { recursive: true, force: true })
  })

  it('a broker that dies at start-up fails start with its log tail', () => {
    // A log dir formatted for another node: the broker refuses it and exits.
    const data = path.join(runDir, 'kafka', 'data')
    mkdirSync(data, { recursive: true })
    writeFileSync(
      path.join(data, 'meta.properties'),
      'version=1\ncluster.id=AAAAAAAAAAAAAAAAAAAAAA\nnode.id=99\n',
    )
    const env = { FLEETSTREAM_RUN_DIR: runDir, FS_KAFKA_PORT: '19192', FS_KAFKA_CONTROLLER_PORT: '19195' }
    const r = harness(['start', 'kafka'], env)
    expect(r.code).not.toBe(0)
    expect(r.out).toMatch(/kafka exited during start-up/)
    expect(r.out).toMatch(/--- last 40 lines of .*kafka\/server\.log ---/)
    expect(r.out).toMatch(/node.id|99/)
    expect(harness(['status', 'kafka'], env).out).toMatch(/kafka: stopped/)
    rmSync(path.join(runDir, 'kafka'), { recursive: true, force: true })
  })

  it("a configuration Kafka refuses fails at the storage format step with Kafka's reason", () => {
    // The controller and broker listeners on one port.
    const r = harness(['start', 'kafka'], {
      FLEETSTREAM_RUN_DIR: runDir,
      FS_KAFKA_PORT: '19196',
      FS_KAFKA_CONTROLLER_PORT: '19196',
    })
    expect(r.code).not.toBe(0)
    expect(r.out).toMatch(/two listeners on the same port/)
    expect(r.out).toMatch(/ERROR: kafka storage format failed/)
    rmSync(path.join(runDir, 'kafka'), { recursive: true, force: true })
  })

  it('a port held by a process it did not start is refused with a clear message', async () => {
    const squatter: Server = createServer()
    await new Promise<void>((r) => squatter.listen(19193, '127.0.0.1', r))
    try {
      const r = harness(['start', 'kafka'], {
        FLEETSTREAM_RUN_DIR: runDir,
        FS_KAFKA_PORT: '19193',
        FS_KAFKA_CONTROLLER_PORT: '19194',
      })
      expect(r.code).not.toBe(0)
      expect(r.out).toMatch(/port 19193 is taken by a process this script did not start; set FS_KAFKA_PORT/)
    } finally {
      await new Promise<void>((r) => squatter.close(() => r()))
    }
  })
})
