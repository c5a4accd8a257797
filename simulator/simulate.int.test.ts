import { writeFileSync } from 'node:fs'
import { connect, createServer, type Socket } from 'node:net'
import path from 'node:path'
import Database from 'better-sqlite3'
import { metricValue } from '../test/bridge-process'
import { serverEnv, uniqueName } from '../test/servers'
import { registerDevices, startUp, upMetric, type Up } from '../test/up-process'
import { simulate } from './simulate'
import { tempDir } from '../test/tmp'

// `fleetstream up` + the simulator with every fault on, on the embedded log and on the real
// Kafka (one contract, two transports): what the simulator says was acknowledged is what the
// store holds; what it says was refused is what the bridge counted; the rollups equal an
// aggregation of the stored rows; one scripted out-of-range episode per device raises one
// alert and clears it.
const RULES_YAML = `rules:
  - id: sim-too-hot
    name: Simulated device too hot
    severity: critical
    kind: threshold
    metric: temperature
    above: 60
    clear: 50
`
describe.each([
  ['the embedded log', () => undefined],
  ['Kafka [kafka]', () => ({ brokers: serverEnv().FS_KAFKA_BROKERS, prefix: uniqueName('sim') })],
])('simulator > 500 devices with faults against fleetstream up on %s', (_title, kafka) => {
  let up: Up
  afterAll(async () => {
    await up?.close()
  })

  it("acknowledged readings equal the store's rows; rollups and alerts agree with them", async () => {
    const dataDir = tempDir('fs-sim-')
    const rulesFile = path.join(dataDir, 'sim-rules.yaml')
    writeFileSync(rulesFile, RULES_YAML)
    // Late readings (2 min) still count in their windows: the rollups can be checked against every row.
    up = await startUp(dataDir, kafka(), {
      FLEETSTREAM_UP__RULES: rulesFile,
      FLEETSTREAM_JOBS__ALLOWED_LATENESS_MS: '600000',
    })
    const devices = await registerDevices(dataDir, 'sim-', 500)

    const summary = await simulate({
      devices,
      transport: 'http',
      httpUrl: `http://127.0.0.1:${up.listening.http}`,
      mqttUrl: `mqtt://127.0.0.1:${up.listening.mqtt}`,
      readings: 24,
      intervalMs: 5000,
      batch: 4,
      concurrency: 50,
      faults: { outOfOrder: 0.05, late: 0.05, offline: 0.1, skew: 0.1, bad: 0.02 },
      lateMs: 120_000,
      skewMs: 30_000,
      seed: 7,
      episode: { from: 3, length: 3, metric: 'temperature', value: 75 },
    })
    // Every fault happened, and every reading got an answer.
    expect(summary.offlineDevices).toBeGreaterThan(0)
    expect(summary.faults.bad).toBeGreaterThan(0)
    expect(summary.faults.late).toBeGreaterThan(0)
    expect(summary.faults.outOfOrder).toBeGreaterThan(0)
    expect(summary.unanswered).toBe(0)
    expect(summary.acknowledged + summary.rejected.FS_BRIDGE_DECODE!).toBe(summary.sent)
    expect(summary.rejected).toEqual({ FS_BRIDGE_DECODE: summary.faults.bad })

    const db = new Database(path.join(dataDir, 'fleetstream.db'), { readonly: true, fileMustExist: true })
    const one = (sql: string) => Number((db.prepare(sql).get() as { n: number }).n)
    const rows = () => one("SELECT count(*) AS n FROM telemetry WHERE device_id LIKE 'sim-%'")
    const until = async (what: string, ok: () => boolean) => {
      for (let i = 0; i < 600 && !ok(); i++) await new Promise((r) => setTimeout(r, 100))
      if (!ok()) throw new Error(`timed out waiting for ${what}`)
    }
    await until('every acknowledged reading in the store', () => rows() >= summary.acknowledged)
    await new Promise((r) => setTimeout(r, 500))
    expect(rows()).toBe(summary.acknowledged)

    // Alerts: one per device for the scripted episode, raised and cleared (no duplicates, none left open).
    const alerts = () =>
      db
        .prepare(
          "SELECT device_id AS d, count(*) AS n, sum(state = 'cleared') AS cleared FROM alerts WHERE rule_id = 'sim-too-hot' GROUP BY device_id",
        )
        .all() as { d: string; n: number; cleared: number }[]
    await until('an alert raised and cleared for every device', () => {
      const a = alerts()
      return a.length === devices.length && a.every((x) => x.cleared === 1)
    })
    expect(alerts().filter((x) => x.n !== 1 || x.cleared !== 1)).toEqual([])

    // Rollups: every 1-minute window the pipeline wrote equals an aggregation of the stored rows
    // (the rollup job's output, corrections included, against the sink's copy of its input).
    type Agg = { d: string; m: string; w: number; count: number; min: number; max: number; sum: number }
    const stored = () =>
      db
        .prepare(
          "SELECT device_id AS d, metric AS m, window_start AS w, count, min, max, sum FROM rollups WHERE window_ms = 60000 AND device_id LIKE 'sim-%' ORDER BY 1, 2, 3",
        )
        .all() as Agg[]
    const fromRows = () =>
      new Map(
        (
          db
            .prepare(
              `SELECT t.device_id AS d, m.key AS m, (t.ts / 60000) * 60000 AS w, count(*) AS count,
                      min(m.value) AS min, max(m.value) AS max, sum(m.value) AS sum
                 FROM telemetry t, json_each(t.metrics) m
                WHERE t.device_id LIKE 'sim-%'
                GROUP BY 1, 2, 3`,
            )
            .all() as Agg[]
        ).map((a) => [`${a.d}/${a.m}/${a.w}`, a]),
      )
    const mismatches = () => {
      const expected = fromRows()
      return stored().filter((r) => {
        const e = expected.get(`${r.d}/${r.m}/${r.w}`)
        return (
          !e ||
          e.count !== r.count ||
          e.min !== r.min ||
          e.max !== r.max ||
          Math.abs(e.sum - r.sum) > 1e-6 * Math.max(1, Math.abs(e.sum))
        )
      })
    }
    await until('the rollups to agree with the rows', () => mismatches().length === 0)
    // Most windows have closed (the last minute of each device may still be open).
    expect(stored().length).toBeGreaterThan(devices.length * 4 * 1.5)
    db.close()

    const metrics = await (await fetch(`http://127.0.0.1:${up.listening.http}/metrics`)).text()
    expect(metricValue(metrics, 'fleetstream_bridge_rejected_total', { reason: 'FS_BRIDGE_DECODE' })).toBe(
      summary.faults.bad,
    )
    expect(metricValue(metrics, 'fleetstream_bridge_deadletter_total')).toBeGreaterThanOrEqual(
      summary.faults.bad,
    )
  }, 240_000)
})

describe('simulator > fleetstream up killed mid-stream', () => {
  let up: Up | undefined
  afterAll(async () => {
    await up?.close()
  })

  it('loses nothing it acknowledged: after kill -9 and a restart every acknowledged reading is stored', async () => {
    const dataDir = tempDir('fs-sim-kill-')
    up = await startUp(dataDir)
    const devices = await registerDevices(dataDir, 'kill-', 40)
    const running = simulate({
      devices,
      transport: 'mqtt',
      httpUrl: '',
      mqttUrl: `mqtt://127.0.0.1:${up.listening.mqtt}`,
      readings: 400,
      intervalMs: 1000,
      batch: 1,
      concurrency: 40,
      faults: { outOfOrder: 0, late: 0, offline: 0, skew: 0, bad: 0 },
      lateMs: 0,
      skewMs: 0,
      onProgress: (done) => {
        if (done >= 3000 && up && !killed) {
          killed = true
          void up.kill()
        }
      },
    })
    let killed = false
    const summary = await running
    expect(killed).toBe(true)
    expect(summary.acknowledged).toBeGreaterThanOrEqual(3000)
    expect(summary.acknowledged).toBeLessThan(summary.sent)

    up = await startUp(dataDir)
    const db = new Database(path.join(dataDir, 'fleetstream.db'), { readonly: true, fileMustExist: true })
    const rows = () =>
      Number(
        (
          db.prepare("SELECT count(*) AS n FROM telemetry WHERE device_id LIKE 'kill-%'").get() as {
            n: number
          }
        ).n,
      )
    for (let i = 0; i < 300 && rows() < summary.acknowledged; i++)
      await new Promise((r) => setTimeout(r, 100))
    // Every acknowledged reading is stored; at most the ones in flight at the kill are extra.
    expect(rows()).toBeGreaterThanOrEqual(summary.acknowledged)
    expect(rows()).toBeLessThanOrEqual(summary.acknowledged + summary.unanswered)
    db.close()
  }, 180_000)
})

/** Waits (up to 30 s) for `n` rows of the devices named `prefix…` in `up`'s store: each (device, seq) once. */
async function expectStoredOnce(dataDir: string, prefix: string, n: number): Promise<void> {
  const db = new Database(path.join(dataDir, 'fleetstream.db'), { readonly: true, fileMustExist: true })
  const rows = () =>
    db.prepare('SELECT device_id AS d, seq FROM telemetry WHERE device_id LIKE ?').all(`${prefix}%`) as {
      d: string
      seq: number
    }[]
  for (let i = 0; i < 300 && rows().length < n; i++) await new Promise((r) => setTimeout(r, 100))
  const stored = rows()
  db.close()
  expect(stored).toHaveLength(n)
  expect(new Set(stored.map((r) => `${r.d}/${r.seq}`)).size).toBe(n)
}

describe('simulator > MQTT messages of several readings', () => {
  let up: Up | undefined
  afterAll(async () => {
    await up?.close()
  })

  it('sends batches as one message each; every reading acknowledged is a row', async () => {
    const dataDir = tempDir('fs-sim-batch-')
    up = await startUp(dataDir)
    const devices = await registerDevices(dataDir, 'batch-', 20)
    const received = () => upMetric(up!, 'fleetstream_bridge_received_total', { source: 'mqtt' })
    const before = await received()
    const summary = await simulate({
      devices,
      transport: 'mqtt',
      httpUrl: '',
      mqttUrl: `mqtt://127.0.0.1:${up.listening.mqtt}`,
      readings: 31, // six messages of 5 and one of 1 per device
      intervalMs: 1000,
      batch: 5,
      concurrency: 20,
      faults: { outOfOrder: 0.1, late: 0, offline: 0, skew: 0, bad: 0 },
      lateMs: 0,
      skewMs: 0,
      seed: 3,
    })
    expect(summary).toMatchObject({ sent: 620, acknowledged: 620, unanswered: 0, rejected: {} })
    expect((await received()) - before).toBe(20 * 7)
    await expectStoredOnce(dataDir, 'batch-', 620)
  }, 120_000)
})

/**
 * A TCP proxy in front of an MQTT listener that cuts each client's first connection right
 * after passing on its `cutAfter`-th PUBLISH: the message arrives, its PUBACK never does.
 * Each QoS 1 publish here goes alone (the simulator waits for its ack), so a chunk from the
 * client that starts with a PUBLISH fixed header (0x32) is one.
 */
async function cuttingProxy(target: number, cutAfter: number) {
  const cut = new Set<string>()
  const sockets = new Set<Socket>()
  let connections = 0
  const server = createServer((client) => {
    connections++
    const upstream = connect(target, '127.0.0.1')
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => undefined)
      s.on('close', () => (client.destroy(), upstream.destroy()))
    }
    let id: string | undefined
    let publishes = 0
    let severed = false
    client.on('data', (chunk: Buffer) => {
      // CONNECT: the client id is the first field of the payload (MQTT 3.1.1, "MQTT" + level 4).
      if (chunk[0] === 0x10 && id === undefined) {
        let i = 1
        while (chunk[i]! & 0x80) i++
        const at = i + 1 + 10
        id = chunk.subarray(at + 2, at + 2 + chunk.readUInt16BE(at)).toString()
      }
      upstream.write(chunk)
      if (chunk[0] === 0x32 && ++publishes === cutAfter && id && !cut.has(id)) {
        cut.add(id)
        severed = true // nothing from the broker reaches this client any more: its PUBACK is lost
        setImmediate(() => client.destroy())
      }
    })
    upstream.on('data', (chunk: Buffer) => {
      if (!severed) client.write(chunk)
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `mqtt://127.0.0.1:${(server.address() as { port: number }).port}`,
    cut,
    connections: () => connections,
    stop: async () => {
      for (const s of sockets) s.destroy()
      await new Promise((r) => server.close(r))
    },
  }
}

describe('simulator > devices whose connection is lost', () => {
  let up: Up | undefined
  afterAll(async () => {
    await up?.close()
  })

  it('reconnect and send the unacknowledged message again; the bridge keeps one copy', async () => {
    const dataDir = tempDir('fs-sim-lost-')
    up = await startUp(dataDir)
    const devices = await registerDevices(dataDir, 'lost-', 10)
    const proxy = await cuttingProxy(up.listening.mqtt, 2)
    const metric = (name: string, labels?: Record<string, string>) => upMetric(up!, name, labels)
    const before = {
      received: await metric('fleetstream_bridge_received_total', { source: 'mqtt' }),
      duplicates: await metric('fleetstream_bridge_duplicates_dropped_total'),
    }
    try {
      const summary = await simulate({
        devices,
        transport: 'mqtt',
        httpUrl: '',
        mqttUrl: proxy.url,
        readings: 6,
        intervalMs: 1000,
        batch: 1,
        concurrency: 10,
        faults: { outOfOrder: 0, late: 0, offline: 0, skew: 0, bad: 0 },
        lateMs: 0,
        skewMs: 0,
      })
      expect(proxy.cut.size).toBe(10)
      expect(proxy.connections()).toBe(20)
      expect(summary).toMatchObject({
        sent: 60,
        acknowledged: 60,
        unanswered: 0,
        reconnects: 10,
        rejected: {},
      })
    } finally {
      await proxy.stop()
    }
    // Each device's second reading arrived twice: once before the cut, once again after it.
    expect((await metric('fleetstream_bridge_received_total', { source: 'mqtt' })) - before.received).toBe(70)
    expect((await metric('fleetstream_bridge_duplicates_dropped_total')) - before.duplicates).toBe(10)
    await expectStoredOnce(dataDir, 'lost-', 60)
  }, 120_000)
})

describe('simulator > HTTP devices over the rate limit', () => {
  let up: Up | undefined
  afterAll(async () => {
    await up?.close()
  })

  it('wait as Retry-After says and send again; the bridge counts each refusal', async () => {
    const dataDir = tempDir('fs-sim-retry-')
    // One message a second per device, no burst: a device's second message at once is refused
    // (429, Retry-After: 1).
    up = await startUp(dataDir, undefined, {
      FLEETSTREAM_BRIDGE__LIMITS__RATE_PER_DEVICE: '1',
      FLEETSTREAM_BRIDGE__LIMITS__BURST_PER_DEVICE: '1',
    })
    const devices = await registerDevices(dataDir, 'retry-', 5)
    const limited = () => upMetric(up!, 'fleetstream_bridge_rate_limited_total', { source: 'http' })
    const run = (retries: number, startTs: number) =>
      simulate({
        devices,
        transport: 'http',
        httpUrl: `http://127.0.0.1:${up!.listening.http}`,
        mqttUrl: '',
        readings: 3,
        intervalMs: 1000,
        batch: 1,
        concurrency: 5,
        faults: { outOfOrder: 0, late: 0, offline: 0, skew: 0, bad: 0 },
        lateMs: 0,
        skewMs: 0,
        startTs,
        retries,
      })
    const before = await limited()
    const summary = await run(3, Date.now() - 60_000)
    expect(summary).toMatchObject({ sent: 15, acknowledged: 15, rejected: {}, unanswered: 0 })
    // Each device's second and third message came too soon at least once.
    expect(summary.retried).toBeGreaterThanOrEqual(10)
    expect((await limited()) - before).toBe(summary.retried)
    await expectStoredOnce(dataDir, 'retry-', 15)

    // Without retries, the refusals are the summary's.
    await new Promise((r) => setTimeout(r, 1100)) // the devices' tokens refill
    const mid = await limited()
    const refused = await run(0, Date.now() - 30_000)
    expect(refused.retried).toBe(0)
    expect(refused.rejected.FS_BRIDGE_RATE).toBeGreaterThanOrEqual(10)
    expect(refused.acknowledged + refused.rejected.FS_BRIDGE_RATE!).toBe(15)
    expect((await limited()) - mid).toBe(refused.rejected.FS_BRIDGE_RATE)
  }, 120_000)
})
