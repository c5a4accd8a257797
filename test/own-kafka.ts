import { execFileSync } from 'node:child_process'
import { rmSync } from 'node:fs'
import path from 'node:path'

const SCRIPT = path.resolve(__dirname, '../scripts/servers.sh')

/**
 * A Kafka broker of a test's own (scripts/servers.sh under another run directory and ports),
 * so that stopping it disturbs no other test. `port` and `port + 1` (its controller) must be
 * free and used by no other test.
 */
export function ownKafka(name: string, port: number) {
  const env = {
    FLEETSTREAM_RUN_DIR: `/tmp/fleetstream-${name}`,
    FS_KAFKA_PORT: String(port),
    FS_KAFKA_CONTROLLER_PORT: String(port + 1),
  }
  const run = (verb: 'start' | 'stop') =>
    execFileSync('bash', [SCRIPT, verb, 'kafka'], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'inherit'],
    })
  return {
    brokers: `127.0.0.1:${port}`,
    start: () => run('start'),
    stop: () => run('stop'),
    /** Forgets its data: call before the first start and after the last stop. */
    wipe: () => rmSync(env.FLEETSTREAM_RUN_DIR, { recursive: true, force: true }),
  }
}
