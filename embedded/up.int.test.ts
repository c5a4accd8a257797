import { readdirSync, readFileSync } from 'node:fs'
import { connectMqtt } from '../test/mqtt'
import { serverEnv, uniqueName } from '../test/servers'
import { startUp, type Up } from '../test/up-process'
import { tempDir } from '../test/tmp'

const MIN = 60_000

/** The nice value of thread `tid` of process `pid` (Linux: field 19 of /proc/<pid>/task/<tid>/stat). */
const niceOf = (pid: number, tid: number | string): number => {
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])
}

// `fleetstream up` on its embedded defaults — no Kafka, no database server: the embedded log
// and SQLite, in one process — and the same roles on the real Kafka (`--kafka`): one contract,
// two transports. Readings in over HTTP and MQTT → rows out of the query API.
// The jobs and the sink run on two threads of their own by default (`up.jobsThreads`); the last
// rows run them on one, and on the main thread.
// The last column: how many of `up`'s threads run at a lower priority (`up.analyticsNice`, 10 below):
// the rollup and rules thread, when there is one apart from the path from a device to its row.
describe.each([
  ['the embedded log', () => undefined, {}, 1],
  ['Kafka [kafka]', () => ({ brokers: serverEnv().FS_KAFKA_BROKERS, prefix: uniqueName('up') }), {}, 1],
  ['the embedded log, one jobs thread', () => undefined, { FLEETSTREAM_UP__JOBS_THREADS: '1' }, 0],
  ['the embedded log, jobs on the main thread', () => undefined, { FLEETSTREAM_UP__JOBS_THREADS: '0' }, 0],
])('embedded > fleetstream up on %s, SQLite store', (_title, kafka, env: Record<string, string>, niced) => {
  const dataDir = tempDir('fs-up-')
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
    up = await startUp(dataDir, transport, env)
    if (process.platform === 'linux') {
      const pid = up.proc.pid!
      const nices = readdirSync(`/proc/${pid}/task`).map((tid) => niceOf(pid, tid))
      const base = niceOf(pid, pid) // the main thread's (its id is the process's)
      const lower = Math.min(19, base + 10)
      expect(nices.filter((n) => n === lower && n !== base)).toHaveLength(niced)
      expect(nices.filter((n) => n !== lower && n !== base)).toEqual([])
    }
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
    // A QoS 1 publish waits for its PUBACK across reconnects: if `up` died, say so instead of hanging.
    const died = new Promise<never>((_, reject) =>
      up.proc.once('exit', (code, signal) => reject(new Error(`fleetstream up exited (${code ?? signal})`))),
    )
    died.catch(() => undefined)
    for (let i = 0; i < 30; i++)
      await Promise.race([
        client.publishAsync(
          `devices/${up.demo.deviceId}/telemetry`,
          JSON.stringify({ timestamp: T0 + 10 * MIN + i * 5000, temperature: 30 }),
          { qos: 1 },
        ),
        died,
      ])
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

    // One /metrics for every role of the process: bridge, jobs (labelled by job), rules, sink, API.
    let metrics = ''
    const total = (name: string, label = '') =>
      metrics
        .split('\n')
        .filter((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(label))
        .reduce((a, l) => a + Number(l.split(' ').pop()), 0)
    // The jobs read on their own schedule: wait until the rollup job has counted every reading.
    await until('the rollup job to count 150 readings', async () => {
      metrics = await (await fetch(`http://127.0.0.1:${up.listening.api}/metrics`)).text()
      return total('fleetstream_job_records_in_total', 'job="rollup"') >= 150
    })
    expect(total('fleetstream_bridge_accepted_total')).toBe(150)
    expect(total('fleetstream_job_records_in_total', 'job="enrich"')).toBeGreaterThanOrEqual(150)
    expect(total('fleetstream_job_records_in_total', 'job="rollup"')).toBeGreaterThanOrEqual(150)
    expect(total('fleetstream_rules_evaluations_total')).toBeGreaterThan(0)
    expect(total('fleetstream_sink_rows_total')).toBeGreaterThanOrEqual(150)
    expect(metrics).toContain('fleetstream_api_requests_total')
    // One set of process metrics for the one process (each set lists every socket's handle per scrape).
    expect(metrics.match(/^process_open_fds \d+$/gm)).toHaveLength(1)
    expect(metrics).not.toMatch(/^fleetstream_bridge_process_/m)

    // Restart on the same data directory: nothing is lost, nothing is written twice.
    await up.close()
    up = await startUp(dataDir, transport, env)
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
