import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import type { Command } from 'commander'
import { createDeviceStore } from '../bridge/auth'
import { bridgeRoleConfig } from '../bridge/config'
import { loadConfig } from '../core/config/load'
import { simulate, type Faults } from './simulate'

/** Devices sim-0…sim-(n-1) in the bridge's device store; tokens kept beside it (mode 0600). */
async function provision(
  authFile: string,
  store: ReturnType<typeof createDeviceStore>,
  n: number,
  prefix: string,
) {
  const file = path.join(path.dirname(authFile), 'simulator-devices.json')
  const known: Record<string, string> = existsSync(file)
    ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>)
    : {}
  const missing = Array.from({ length: n }, (_, i) => `${prefix}${i}`).filter((id) => !known[id])
  for (let i = 0; i < missing.length; i += 8) {
    // A few at a time: tokens may be stored with scrypt (`bridge.auth.tokenHash`), ~40 ms each.
    for (const r of await Promise.all(
      missing.slice(i, i + 8).map((id) => store.add(id, { tenant: 'simulated' })),
    ))
      known[r.deviceId] = r.token
  }
  if (missing.length) writeFileSync(file, `${JSON.stringify(known)}\n`, { mode: 0o600 })
  return Array.from({ length: n }, (_, i) => ({ deviceId: `${prefix}${i}`, token: known[`${prefix}${i}`]! }))
}

const fraction = (v: string) => {
  const n = Number(v)
  if (!(n >= 0 && n <= 1)) throw new Error(`a fault is a fraction between 0 and 1, got ${v}`)
  return n
}

/** Adds `fleetstream simulate`. */
export function registerSimulateCommands(program: Command): void {
  program
    .command('simulate')
    .description(
      'simulated devices sending realistic readings to the bridge (MQTT or HTTP), with faults on demand',
    )
    .option('-n, --devices <n>', 'devices', '100')
    .option('-r, --readings <n>', 'readings per device', '60')
    .option('-i, --interval <ms>', 'event time between readings of a device', '5000')
    .option('-t, --transport <mqtt|http>', 'how devices send', 'mqtt')
    .option('--mqtt-url <url>', 'the bridge MQTT listener', 'mqtt://127.0.0.1:1883')
    .option('--http-url <url>', 'the bridge HTTP listener', 'http://127.0.0.1:8080')
    .option('--concurrency <n>', 'devices sending at once', '50')
    .option('--batch <n>', 'readings per HTTP request or MQTT message (default: 10 over HTTP, 1 over MQTT)')
    .option(
      '--rate <n>',
      'readings per second for the whole fleet, spread evenly over the devices (all connected at once; ' +
        'readings stamped as they go, one every devices×1000/rate ms per device, which replaces -i); ' +
        'default: each device sends as soon as its previous reading is acknowledged',
    )
    .option('--out-of-order <f>', 'fraction of readings sent after the next one', fraction, 0)
    .option('--late <f>', 'fraction of readings made late by --late-ms', fraction, 0)
    .option('--late-ms <ms>', 'how late', '300000')
    .option('--offline <f>', 'fraction of devices that stop halfway', fraction, 0)
    .option('--skew <f>', 'fraction of devices whose clock is off by up to --skew-ms', fraction, 0)
    .option('--skew-ms <ms>', 'clock skew', '60000')
    .option('--bad <f>', 'fraction of readings sent as payloads the bridge must refuse (HTTP)', fraction, 0)
    .option(
      '--retries <n>',
      'times a device sends a message again: MQTT, reconnecting when its connection is lost or the message is not acknowledged in 30 s; HTTP, after a 429/503 with Retry-After',
      '3',
    )
    .option('--prefix <p>', 'device id prefix', 'sim-')
    .option('--data <dir>', 'the data folder of `fleetstream up` (its device store)')
    .option('-c, --config <file>', 'YAML configuration file (bridge.auth: where devices are registered)')
    .action(async (o: Record<string, string | number | undefined>) => {
      const env: NodeJS.ProcessEnv = { ...process.env }
      if (o.data) env.FLEETSTREAM_BRIDGE__AUTH__FILE = path.join(String(o.data), 'devices.json')
      const cfg = loadConfig(bridgeRoleConfig, {
        file: (o.config as string) ?? process.env.FLEETSTREAM_CONFIG,
        env,
      })
      const store = createDeviceStore(cfg.bridge.auth)
      const n = Number(o.devices)
      process.stderr.write(`provisioning ${n} devices…\n`)
      const devices = await provision(cfg.bridge.auth.file, store, n, String(o.prefix))
      await store.close()
      const tty = process.stderr.isTTY
      let lastPct = -1
      const faults: Faults = {
        outOfOrder: Number(o.outOfOrder),
        late: Number(o.late),
        offline: Number(o.offline),
        skew: Number(o.skew),
        bad: Number(o.bad),
      }
      const rate = o.rate === undefined ? undefined : Number(o.rate)
      if (rate !== undefined && !(rate > 0)) throw new Error(`--rate must be a number > 0, got ${o.rate}`)
      const retries = Number(o.retries)
      if (!Number.isInteger(retries) || retries < 0)
        throw new Error(`--retries must be a whole number >= 0, got ${o.retries}`)
      const summary = await simulate({
        devices,
        transport: o.transport === 'http' ? 'http' : 'mqtt',
        httpUrl: String(o.httpUrl),
        mqttUrl: String(o.mqttUrl),
        readings: Number(o.readings),
        intervalMs: rate ? (n * 1000) / rate : Number(o.interval),
        batch: o.batch === undefined ? (o.transport === 'http' ? 10 : 1) : Number(o.batch),
        concurrency: rate ? n : Number(o.concurrency),
        ratePerS: rate,
        faults,
        lateMs: Number(o.lateMs),
        skewMs: Number(o.skewMs),
        retries,
        onProgress: (done, total) => {
          const pct = Math.floor((done / total) * 100)
          if (pct === lastPct) return
          lastPct = pct
          const bar = '#'.repeat(Math.floor(pct / 5)).padEnd(20, '.')
          if (tty) process.stderr.write(`\r[${bar}] ${pct}% ${done}/${total}`)
          else if (pct % 10 === 0) process.stderr.write(`[${bar}] ${pct}% ${done}/${total}\n`)
        },
      })
      if (tty) process.stderr.write('\n')
      process.stdout.write(`${JSON.stringify({ event: 'summary', ...summary })}\n`)
    })
}
