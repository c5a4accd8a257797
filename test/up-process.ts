import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, readFileSync } from 'node:fs'
import path from 'node:path'
import { createDeviceStore } from '../bridge/auth'
import { bridgeRoleConfig } from '../bridge/config'
import { metricValue } from './bridge-process'

export interface Up {
  proc: ChildProcess
  listening: { mqtt: number; http: number; api: number }
  demo: { deviceId: string; token: string; apiKey: string }
  close(): Promise<void>
  /** SIGKILL: no drain, no flush. */
  kill(): Promise<void>
}

/** The node options of `npm start` (package.json), so that tests and benchmarks run `up` as it is started. */
export const START_NODE_ARGS: string[] = (
  JSON.parse(readFileSync(path.resolve(__dirname, '../package.json'), 'utf8')) as {
    scripts: { start: string }
  }
).scripts.start
  .split(' ')
  .filter((a) => a.startsWith('--'))

/** `fleetstream up` as a process of its own (aedes, the embedded broker, is ESM-only: jest cannot load it). */
export function startUp(
  dataDir: string,
  kafka?: { brokers: string; prefix: string },
  extraEnv: Record<string, string> = {},
  nodeArgs: string[] = [],
): Promise<Up> {
  const args = ['up', '--data', dataDir, ...(kafka ? ['--kafka', kafka.brokers] : [])]
  // On the shared test Kafka: topics and groups of this run only.
  const names = kafka
    ? Object.fromEntries(
        ['RAW', 'DEVICES', 'ENRICHED', 'LATE', 'ROLLUPS1M', 'ROLLUPS1H', 'RULES', 'ALERTS', 'DEADLETTER'].map(
          (t) => [`FLEETSTREAM_TOPICS__${t}`, `${kafka.prefix}.${t.toLowerCase()}`],
        ),
      )
    : {}
  const apps = kafka
    ? Object.fromEntries(
        ['JOBS', 'ALERTS', 'SINKS'].map((r) => [`FLEETSTREAM_${r}__APPLICATION_ID`, kafka.prefix]),
      )
    : {}
  const proc = spawn(
    process.execPath,
    [...START_NODE_ARGS, ...nodeArgs, path.resolve(__dirname, '../bin/fleetstream.js'), ...args],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: {
        ...names,
        ...apps,
        PATH: process.env.PATH!,
        // Benchmarks run the compiled build (bench/lib/build.ts).
        ...(process.env.FS_BUILD_DIR ? { FS_BUILD_DIR: process.env.FS_BUILD_DIR } : {}),
        FLEETSTREAM_BRIDGE__MQTT__PORT: '0',
        FLEETSTREAM_BRIDGE__HTTP__PORT: '0',
        FLEETSTREAM_BRIDGE__LIMITS__RATE_PER_DEVICE: '0',
        FLEETSTREAM_API__PORT: '0',
        FLEETSTREAM_API__HOST: '127.0.0.1',
        FLEETSTREAM_JOBS__TICK_MS: '200',
        FLEETSTREAM_JOBS__OUT_OF_ORDERNESS_MS: '1000',
        FLEETSTREAM_JOBS__ALLOWED_LATENESS_MS: '0',
        FLEETSTREAM_LOG__LEVEL: process.env.FS_TEST_UP_LOG ? 'debug' : 'warn',
        ...extraEnv,
      },
    },
  )
  /** Stops the process; one that has not exited 15 s after SIGTERM gets SIGKILL (a test never hangs on it). */
  const stop = (signal: NodeJS.Signals) =>
    new Promise<void>((r) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return r()
      const force = setTimeout(() => proc.kill('SIGKILL'), 15_000)
      proc.once('exit', () => (clearTimeout(force), r()))
      proc.kill(signal)
    })
  return new Promise((resolve, reject) => {
    let out = ''
    // `up` that is not running within 90 s is killed, and the test fails saying so.
    const startTimer = setTimeout(() => {
      reject(new Error(`fleetstream up did not start within 90 s; its last output: ${out.slice(-2000)}`))
      void stop('SIGKILL')
    }, 90_000)
    proc.once('exit', () => clearTimeout(startTimer))
    // To find out why a test failed: FS_TEST_UP_LOG=<file> keeps the process's log, at debug level.
    if (process.env.FS_TEST_UP_LOG)
      proc.stdout!.pipe(createWriteStream(process.env.FS_TEST_UP_LOG, { flags: 'a' }))
    const untilRunning = (c: Buffer) => {
      out += c.toString()
      const line = out.split('\n').find((l) => l.includes('"event":"running"'))
      if (!line) return
      out = ''
      // From here on the output is only drained (a pipe nobody reads would block `up`'s writes):
      // searching the whole output again on every chunk was quadratic in a long run's output
      // (`bench:up`: 40,000 alert log lines).
      proc.stdout!.off('data', untilRunning)
      proc.stdout!.resume()
      clearTimeout(startTimer)
      resolve({
        proc,
        listening: JSON.parse(line) as Up['listening'],
        demo: JSON.parse(readFileSync(path.join(dataDir, 'demo.json'), 'utf8')) as Up['demo'],
        close: () => stop('SIGTERM'),
        kill: () => stop('SIGKILL'),
      })
    }
    proc.stdout!.on('data', untilRunning)
    proc.once('exit', (code) => reject(new Error(`fleetstream up exited with ${code}`)))
  })
}

/**
 * Registers `count` devices `<prefix>0…` in the device store of `up`'s data folder (the file
 * store, as `up` uses it), ten at a time, and returns their credentials.
 */
export async function registerDevices(
  dataDir: string,
  prefix: string,
  count: number,
): Promise<{ deviceId: string; token: string }[]> {
  const cfg = bridgeRoleConfig.parse({ bridge: { auth: { file: path.join(dataDir, 'devices.json') } } })
  const store = createDeviceStore(cfg.bridge.auth)
  const devices: { deviceId: string; token: string }[] = []
  try {
    for (let i = 0; i < count; i += 10)
      devices.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(10, count - i) }, (_, k) => store.add(`${prefix}${i + k}`)),
        )),
      )
  } finally {
    await store.close()
  }
  return devices
}

/** One value of `up`'s Prometheus metrics, read now. */
export async function upMetric(up: Up, name: string, labels?: Record<string, string>): Promise<number> {
  return metricValue(
    await (await fetch(`http://127.0.0.1:${up.listening.http}/metrics`)).text(),
    name,
    labels,
  )
}
