import { execFileSync } from 'node:child_process'
import path from 'node:path'

/** Connection settings of the real test servers, as scripts/servers.sh prints them (`env`). */
export interface ServerEnv {
  FS_KAFKA_BROKERS: string
  /** Folder of the Kafka jars (the Java client too), for tests that run Java. */
  FS_KAFKA_LIB: string
  FS_CASSANDRA_CONTACT_POINTS: string
  /** Folder of the Cassandra jars (its Java driver too), for the sink benchmark's peer. */
  FS_CASSANDRA_LIB: string
  FS_POSTGRES_URL: string
  FS_MOSQUITTO_URL: string
  FS_MOSQUITTO_USER: string
  FS_MOSQUITTO_PASSWORD: string
}

const SCRIPT = path.resolve(__dirname, '../scripts/servers.sh')
let cached: ServerEnv | undefined

/** Reads the connection settings from the harness, so tests and script share one source. */
export function serverEnv(): ServerEnv {
  if (cached) return cached
  const out = execFileSync('bash', [SCRIPT, 'env'], { encoding: 'utf8' })
  const env: Record<string, string> = {}
  for (const line of out.split('\n')) {
    const i = line.indexOf('=')
    if (i > 0) env[line.slice(0, i)] = line.slice(i + 1)
  }
  cached = env as unknown as ServerEnv
  return cached
}

/** Starts servers through the harness (no-op when running) and fails with their log tail if one won't. */
export function startServers(names: string[] = []): void {
  execFileSync('bash', [SCRIPT, 'start', ...names], { stdio: ['ignore', 'inherit', 'inherit'] })
}

/** A name unique to this run, for topics, groups, keyspaces and tables. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6).toString(36)}`
}
