import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { testKafkaLog } from '../test/kafka'
import { serverEnv, uniqueName } from '../test/servers'

const BIN = path.resolve(__dirname, '../bin/fleetstream.js')

describe('cli > fleetstream topics [kafka]', () => {
  it("creates the design's topics on the real broker, then lists them; a second create creates none", async () => {
    const p = uniqueName('cli')
    const env = {
      PATH: process.env.PATH!,
      FLEETSTREAM_KAFKA__BROKERS: serverEnv().FS_KAFKA_BROKERS,
      FLEETSTREAM_LOG__LEVEL: 'warn',
      FLEETSTREAM_TOPICS__PARTITIONS: '2',
      ...Object.fromEntries(
        ['RAW', 'DEVICES', 'ENRICHED', 'LATE', 'ROLLUPS1M', 'ROLLUPS1H', 'RULES', 'ALERTS', 'DEADLETTER'].map(
          (t) => [`FLEETSTREAM_TOPICS__${t}`, `${p}.${t.toLowerCase()}`],
        ),
      ),
    }
    const first = spawnSync(process.execPath, [BIN, 'topics', 'create'], { encoding: 'utf8', env })
    expect(first.status).toBe(0)
    expect(JSON.parse(first.stdout.trim().split('\n').pop()!).created).toHaveLength(9)
    const second = spawnSync(process.execPath, [BIN, 'topics', 'create'], { encoding: 'utf8', env })
    expect(JSON.parse(second.stdout.trim().split('\n').pop()!).created).toEqual([])
    const list = spawnSync(process.execPath, [BIN, 'topics', 'list'], { encoding: 'utf8', env })
    expect(list.stdout.split('\n').filter((t) => t.startsWith(p))).toHaveLength(9)

    const log = testKafkaLog()
    const admin = await log.admin()
    try {
      expect(await admin.partitionCount(`${p}.raw`)).toBe(2)
    } finally {
      await admin.close()
      await log.close()
    }
  })

  it('an unreachable broker fails with a clear error and exit code 2', () => {
    const r = spawnSync(process.execPath, [BIN, 'topics', 'list'], {
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH!,
        FLEETSTREAM_KAFKA__BROKERS: '127.0.0.1:9',
        FLEETSTREAM_KAFKA__CONNECTION_TIMEOUT_MS: '300',
        FLEETSTREAM_LOG__LEVEL: 'error',
      },
      timeout: 90_000,
    })
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/FS_CORE_LOG: cannot connect admin to Kafka/)
  })
})
