import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { connectMqtt } from '../test/mqtt'
import { serverEnv, uniqueName } from '../test/servers'

const MIN = 60_000

interface Up {
  proc: ChildProcess
  listening: { mqtt: number; http: number; api: number }
  demo: { deviceId: string; token: string; apiKey: string }
  close(): Promise<void>
}

/** `fleetstream up` as a process of its own (aedes, the embedded broker, is ESM-only: jest cannot load it). */
function startUp(dataDir: string, kafka?: { brokers: string; prefix: string }): Promise<Up> {
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
  const proc = spawn(process.execPath, [path.resolve(__dirname, '../bin/fleetstream.js'), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      ...names,
      ...apps,
      PATH: process.env.PATH!,
      FLEETSTREAM_BRIDGE__MQTT__PORT: '0',
      FLEETSTREAM_BRIDGE__HTTP__PORT: '0',
      FLEETSTREAM_BRIDGE__LIMITS__RATE_PER_DEVICE: '0',
      FLEETSTREAM_API__PORT: '0',
      FLEETSTREAM_API__HOST: '127.0.0.1',
      FLEETSTREAM_JOBS__TICK_MS: '200',
      FLEETSTREAM_JOBS__OUT_OF_ORDERNESS_MS: '1000',
      FLEETSTREAM_JOBS__ALLOWED_LATENESS_MS: '0',
      FLEETSTREAM_LOG__LEVEL: 'warn',
    },
  })
  return new Promise((resolve, reject) => {
    let out = ''
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString()
      const line = out.split('\n').find((l) => l.includes('"event":"running"'))
      if (!line) return
      out = ''
      resolve({
        proc,
        listening: JSON.parse(line) as Up['listening'],
        demo: JSON.parse(readFileSync(path.join(dataDir, 'demo.json'), 'utf8')) as Up['demo'],
        close: () => new Promise<void>((r) => (proc.once('exit', () => r()), proc.kill('SIGTERM'))),
      })
    })
    proc.once('exit', (code) => reject(new Error(`fleetstream up exited with ${code}`)))
  })
}

// `fleetstream up` on its embedded defaults — no Kafka, no database server: the embedded log
// and SQLite, in one process — and the same roles on the real Kafka (`--kafka`): one contract,
// two transports. Readings in over HTTP and MQTT → rows out of the query API.
describe.each([
  ['the embedded log', () => undefined],
  ['Kafka [kafka]', () => ({ brokers: serverEnv().FS_KAFKA_BROKERS, prefix: uniqueName('up') })],
])('embedded > fleetstream up on %s, SQLite store', (_title, kafka) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'fs-up-'))
  const transport = kafka()
  const T0 = Math.floor(Date.now() / MIN) * MIN - 10 * MIN
  let up: Up
  const api = async (p: string) => {
    const res = await fetch(`http://127.0.0.1:${up.listening.api}${p}`, {
      headers: { Authorization: `Bearer ${up.demo.apiKey}` },
    })
    return (await res.json()) as Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any
  }
  const until = async (what: string, check: () => Promise<boolean>, ms = 30_000) => {
    const end = Date.now() + ms
    while (!(await check())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  const readings = async () =>
    (await api(`/fetch/${up.demo.deviceId}?from=${T0}&to=${T0 + 30 * MIN}&limit=10000`)).tsdata as {
      timestamp: number
    }[]

  afterAll(async () => {
    await up?.close()
  })

  it('stores what devices send over HTTP and MQTT, rolls it up, and keeps it across a restart', async () => {
    up = await startUp(dataDir, transport)
    const auth = `Basic ${Buffer.from(`${up.demo.deviceId}:${up.demo.token}`).toString('base64')}`
    // 120 readings over HTTP, one per 5 s of event time (10 minutes), in batches of 20.
    for (let b = 0; b < 6; b++) {
      const res = await fetch(`http://127.0.0.1:${up.listening.http}/v1/telemetry`, {
        method: 'POST',
        headers: { Authorization: auth, 'Content-Type': 'application/json' },
        body: JSON.stringify(
          Array.from({ length: 20 }, (_, i) => ({
            timestamp: T0 + (b * 20 + i) * 5000,
            temperature: 20 + ((b * 20 + i) % 6),
          })),
        ),
      })
      expect([res.status, await res.text()]).toEqual([200, expect.stringContaining('"accepted":20')])
    }
    // 30 more over MQTT (QoS 1: acknowledged once durable in the embedded log).
    const client = await connectMqtt(`mqtt://127.0.0.1:${up.listening.mqtt}`, {
      clientId: up.demo.deviceId,
      username: up.demo.deviceId,
      password: up.demo.token,
    })
    for (let i = 0; i < 30; i++)
      await client.publishAsync(
        `devices/${up.demo.deviceId}/telemetry`,
        JSON.stringify({ timestamp: T0 + 10 * MIN + i * 5000, temperature: 30 }),
        { qos: 1 },
      )
    await client.endAsync()
    await until('150 readings in the store', async () => (await readings()).length === 150)

    // Enriched from the registry entry `up` wrote for the demo device.
    const device = await api(`/v1/devices/${up.demo.deviceId}`)
    expect(device).toMatchObject({ site: 'lab', model: 'sim-1', registered: true })
    // Rollups: the first ten 1-minute windows are closed by the later readings.
    await until('ten 1-minute rollups', async () => {
      const r = await api(
        `/v1/devices/${up.demo.deviceId}/rollups?metric=temperature&window=1m&from=${T0}&to=${T0 + 10 * MIN}`,
      )
      return r.rollups?.length === 10
    })
    const r = await api(
      `/v1/devices/${up.demo.deviceId}/rollups?metric=temperature&window=1m&from=${T0}&to=${T0 + 10 * MIN}`,
    )
    expect(r.rollups.map((x: { count: number }) => x.count)).toEqual(Array(10).fill(12))
    // The 30 °C readings are above the example rule's limit: an alert is open.
    await until(
      'an alert',
      async () => ((await api(`/v1/alerts?deviceId=${up.demo.deviceId}`)).alerts ?? []).length > 0,
    )

    // Restart on the same data directory: nothing is lost, nothing is written twice.
    await up.close()
    up = await startUp(dataDir, transport)
    expect(await readings()).toHaveLength(150)
    const res = await fetch(`http://127.0.0.1:${up.listening.http}/v1/telemetry`, {
      method: 'POST',
      headers: { Authorization: auth, 'Content-Type': 'application/json' },
      body: JSON.stringify({ timestamp: T0 + 13 * MIN, temperature: 21 }),
    })
    expect(res.status).toBe(200)
    await until('the reading sent after the restart', async () => (await readings()).length === 151)
  }, 120_000)
})
