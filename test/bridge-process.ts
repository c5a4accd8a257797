import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, mkdirSync } from 'node:fs'
import path from 'node:path'
import { FileDeviceStore } from '../bridge/auth/credentials'
import { serverEnv, uniqueName } from './servers'

const BIN = path.resolve(__dirname, '../bin/fleetstream.js')
const ARTIFACTS = path.resolve(__dirname, '../test-artifacts')

/** A bridge running as its own process, as in production. */
export interface BridgeProcess {
  proc: ChildProcess
  mqttPort: number
  httpPort: number
  /** Every listener the bridge reported (mqtt, mqttWs, mqttTls, http). */
  listening: Record<string, number | undefined>
  env: Record<string, string>
  /** Sends a signal and waits for the process to exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
  /** Text of `GET /metrics`. */
  metrics(): Promise<string>
}

/** Topics, devices file and settings unique to one test. */
export function bridgeTestEnv(name: string, extra: Record<string, string> = {}): Record<string, string> {
  const id = uniqueName(name)
  mkdirSync(ARTIFACTS, { recursive: true })
  return {
    FLEETSTREAM_KAFKA__BROKERS: serverEnv().FS_KAFKA_BROKERS,
    FLEETSTREAM_TOPICS__RAW: `${id}.raw`,
    FLEETSTREAM_TOPICS__DEADLETTER: `${id}.dlq`,
    FLEETSTREAM_TOPICS__PARTITIONS: '6',
    FLEETSTREAM_BRIDGE__AUTH__FILE: path.join(ARTIFACTS, `${id}.devices.json`),
    FLEETSTREAM_BRIDGE__MQTT__HOST: '127.0.0.1',
    FLEETSTREAM_BRIDGE__MQTT__PORT: '0',
    FLEETSTREAM_BRIDGE__HTTP__HOST: '127.0.0.1',
    FLEETSTREAM_BRIDGE__HTTP__PORT: '0',
    FLEETSTREAM_LOG__LEVEL: 'warn',
    ...extra,
  }
}

/** Creates devices in the test's devices file; returns their tokens. */
export async function addDevices(env: Record<string, string>, ids: string[]): Promise<Map<string, string>> {
  const store = new FileDeviceStore(env.FLEETSTREAM_BRIDGE__AUTH__FILE!)
  const tokens = new Map<string, string>()
  // A few at a time: with `tokenHash: scrypt` each add costs ~40 ms of CPU.
  for (let i = 0; i < ids.length; i += 8) {
    const added = await Promise.all(ids.slice(i, i + 8).map((id) => store.add(id)))
    for (const a of added) tokens.set(a.deviceId, a.token)
  }
  return tokens
}

/** Starts `fleetstream bridge` with `env`; resolves once it prints where it listens. Logs go to test-artifacts/. */
export function startBridgeProcess(env: Record<string, string>, logName: string): Promise<BridgeProcess> {
  const proc = spawn(process.execPath, [BIN, 'bridge'], {
    env: { PATH: process.env.PATH!, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const logFile = createWriteStream(path.join(ARTIFACTS, `${logName}.log`), { flags: 'a' })
  proc.stderr!.pipe(logFile)
  return new Promise((resolve, reject) => {
    let buf = ''
    const timer = setTimeout(
      () => reject(new Error(`bridge did not start within 60 s (log: test-artifacts/${logName}.log)`)),
      60_000,
    )
    proc.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`bridge exited with ${code} during start-up (log: test-artifacts/${logName}.log)`))
    })
    proc.stdout!.on('data', (chunk: Buffer) => {
      logFile.write(chunk)
      buf += chunk.toString()
      const line = buf.split('\n').find((l) => l.includes('"event":"listening"'))
      if (!line) return
      clearTimeout(timer)
      proc.removeAllListeners('exit')
      buf = ''
      const where = JSON.parse(line) as { mqtt?: number; http?: number; [k: string]: number | undefined }
      resolve({
        proc,
        env,
        listening: where,
        mqttPort: where.mqtt ?? -1,
        httpPort: where.http ?? -1,
        stop: (signal = 'SIGTERM') =>
          new Promise((res) => {
            if (proc.exitCode !== null || proc.signalCode !== null) return res(proc.exitCode)
            proc.once('exit', (code) => res(code))
            proc.kill(signal)
          }),
        metrics: async () => (await fetch(`http://127.0.0.1:${where.http}/metrics`)).text(),
      })
    })
  })
}

/** The value of one Prometheus sample in `text` (0 when absent). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue
    if (want.every((w) => line.includes(w))) sum += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return sum
}
