import { pack } from 'msgpackr'
import { LocalSchemaRegistry } from '../core/envelope/registry'
import { createTelemetryCodec, type Telemetry } from '../core/envelope/telemetry'
import { addDevices, bridgeTestEnv, startBridgeProcess, type BridgeProcess } from '../test/bridge-process'
import { collect, testKafkaLog } from '../test/kafka'

describe('bridge > HTTP ingest [kafka]', () => {
  let bridge: BridgeProcess
  let tokens: Map<string, string>
  const env = bridgeTestEnv('http')

  beforeAll(async () => {
    tokens = await addDevices(env, ['h-1', 'h-2'])
    bridge = await startBridgeProcess(env, 'bridge-http')
  })
  afterAll(async () => {
    await bridge?.stop()
  })

  const url = (p: string) => `http://127.0.0.1:${bridge.httpPort}${p}`
  const basic = (id: string) => `Basic ${Buffer.from(`${id}:${tokens.get(id)}`).toString('base64')}`

  it('writes the good entries of a mixed batch, answers 400 with an error per bad entry, and every format lands as an envelope', async () => {
    const now = Date.now()
    const batch = await fetch(url('/insert/h-1'), {
      method: 'POST',
      headers: { authorization: basic('h-1'), 'content-type': 'application/json' },
      body: JSON.stringify({
        deviceinfo: { deviceid: 'h-1', fw_ver: '4.2', batt_lvl: 77 },
        tsdata: [
          { timestamp: now - 3000, temperature: 20.5, seq: 1 },
          { timestamp: now - 2000, temperature: { bad: true }, seq: 2 },
          { timestamp: Math.floor((now - 1000) / 1000), temperature: 21.5, seq: 3 },
          { timestamp: 'never', temperature: 22, seq: 4 },
        ],
      }),
    })
    expect(batch.status).toBe(400)
    const body = (await batch.json()) as { accepted: number; rejected: { index: number; code: string }[] }
    expect(body.accepted).toBe(2)
    expect(body.rejected.map((r) => [r.index, r.code])).toEqual([
      [1, 'FS_BRIDGE_TYPE'],
      [3, 'FS_BRIDGE_TIMESTAMP'],
    ])

    const one = await fetch(url('/v1/telemetry'), {
      method: 'POST',
      headers: {
        authorization: `Bearer ${tokens.get('h-1')}`,
        'x-device-id': 'h-1',
        'content-type': 'application/msgpack',
      },
      body: pack({ ts: now, seq: 5, humidity: 40 }),
    })
    expect(one.status).toBe(200)
    const xml = await fetch(url('/v1/telemetry'), {
      method: 'POST',
      headers: { authorization: basic('h-1'), 'content-type': 'application/xml' },
      body: `<readings><reading ts="${now + 1}" seq="6"><humidity>41</humidity></reading></readings>`,
    })
    expect(xml.status).toBe(200)
    expect(await xml.json()).toEqual({ accepted: 1, duplicates: 0, rejected: [] })
    const again = await fetch(url('/v1/telemetry'), {
      method: 'POST',
      headers: { authorization: basic('h-1'), 'content-type': 'application/msgpack' },
      body: pack({ ts: now, seq: 5, humidity: 40 }),
    })
    expect(await again.json()).toEqual({ accepted: 0, duplicates: 1, rejected: [] })

    const log = testKafkaLog()
    try {
      const codec = await createTelemetryCodec(new LocalSchemaRegistry())
      const recs = await collect(
        log,
        { groupId: `h-${Date.now()}`, topics: [env.FLEETSTREAM_TOPICS__RAW!] },
        (r) => r.length >= 4,
      )
      const envs: Telemetry[] = await Promise.all(recs.map((r) => codec.decode(r.value!)))
      expect(envs.map((e) => [e.seq, e.source, e.metrics])).toEqual([
        [1, 'http', { temperature: 20.5 }],
        [3, 'http', { temperature: 21.5 }],
        [5, 'http', { humidity: 40 }],
        [6, 'http', { humidity: 41 }],
      ])
      expect(envs[0]!.meta).toEqual({ fw_ver: '4.2', batt_lvl: '77' })
      expect(envs[1]!.ts).toBe(Math.floor((now - 1000) / 1000) * 1000) // seconds read as seconds
    } finally {
      await log.close()
    }
  })

  it('refuses unauthenticated and cross-device requests', async () => {
    expect((await fetch(url('/insert/h-1'), { method: 'POST', body: '{"t":1}' })).status).toBe(401)
    expect(
      (
        await fetch(url('/insert/h-1'), {
          method: 'POST',
          headers: { authorization: basic('h-2') },
          body: '{"t":1}',
        })
      ).status,
    ).toBe(403)
    expect(
      (
        await fetch(url('/v1/telemetry'), {
          method: 'POST',
          headers: { authorization: `Bearer ${tokens.get('h-2')}`, 'x-device-id': 'h-1' },
          body: '{"t":1}',
        })
      ).status,
    ).toBe(401)
  })

  it('serves health, readiness and Prometheus metrics', async () => {
    expect((await fetch(url('/healthz'))).status).toBe(200)
    expect(await (await fetch(url('/readyz'))).json()).toEqual({ status: 'ready' })
    const m = await (await fetch(url('/metrics'))).text()
    expect(m).toMatch(/fleetstream_bridge_produce_latency_seconds_bucket/)
    expect(m).toMatch(/fleetstream_bridge_process_resident_memory_bytes/)
  })
})
