import { createHmac, timingSafeEqual } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { AvroCodec } from '../../core/envelope/codec'
import { LocalSchemaRegistry, loadBundledSchema } from '../../core/envelope/registry'
import type { KafkaEventLog } from '../../core/kafka/kafkajs-log'
import type { Alert } from '../../schemas/types.generated'
import { collect, testKafkaLog, testLogger } from '../../test/kafka'
import { connectMqtt } from '../../test/mqtt'
import { serverEnv, uniqueName } from '../../test/servers'
import { runAlertConsumer } from './deliver'
import { AlertMetrics } from './metrics'
import { mqttDownlinkSink } from './mqtt-downlink'
import { EVENT_ID_HEADER, SIGNATURE_HEADER, webhookSink } from './webhook'

const SECRET = 'test-secret-0123456789'
const fast = { maxAttempts: 4, initialBackoffMs: 20, maxBackoffMs: 100 }

let log: KafkaEventLog
let codec: AvroCodec<Alert>
beforeAll(async () => {
  log = testKafkaLog()
  codec = await AvroCodec.create<Alert>(
    new LocalSchemaRegistry(),
    'dev.fleetstream.Alert',
    loadBundledSchema('alert.avsc'),
  )
})
afterAll(async () => {
  await log?.close()
})

const alert = (i: number, deviceId = `dev-${i}`): Alert => ({
  alertId: `a${i}`.padEnd(32, '0'),
  event: 'raised',
  ruleId: 'hot',
  ruleName: 'Hot',
  deviceId,
  tenant: null,
  severity: 'critical',
  ts: 1_764_000_000_000 + i,
  raisedAt: 1_764_000_000_000 + i,
  metric: 'temperature',
  value: 40 + i,
  message: `temperature ${40 + i} > 30`,
})

async function alertsTopic(alerts: Alert[]) {
  const topic = uniqueName('alerts')
  const admin = await log.admin()
  await admin.ensureTopics([{ name: topic, partitions: 2, replicationFactor: 1 }])
  await admin.close()
  const p = await log.producer()
  await p.send(alerts.map((a) => ({ topic, key: a.deviceId, value: codec.encode(a) })))
  await p.close()
  return topic
}

/** A local webhook receiver: answers each request with the next status of `plan` (then 200). */
async function receiver(plan: (eventId: string, attempt: number) => number) {
  const seen: { eventId: string; status: number; body: string; signature: string }[] = []
  const attempts = new Map<string, number>()
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString()))
    req.on('end', () => {
      const eventId = String(req.headers[EVENT_ID_HEADER])
      const n = (attempts.get(eventId) ?? 0) + 1
      attempts.set(eventId, n)
      const status = plan(eventId, n)
      seen.push({ eventId, status, body, signature: String(req.headers[SIGNATURE_HEADER]) })
      res.writeHead(status).end()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`
  return { url, seen, close: () => new Promise<void>((r) => server.close(() => r())) }
}

/** What a receiver does with the signature header: recompute the HMAC over "<t>.<body>". */
function validSignature(header: string, body: string): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header)
  if (!m) return false
  const want = createHmac('sha256', SECRET).update(`${m[1]}.${body}`).digest()
  return timingSafeEqual(want, Buffer.from(m[2]!, 'hex'))
}

describe('consumers > alerts > webhook [kafka]', () => {
  it('retries a failing receiver and delivers each event exactly once, signed; a restart redelivers nothing', async () => {
    const alerts = [1, 2, 3].map((i) => alert(i))
    const topic = await alertsTopic(alerts)
    // Each event: 503, then a timeout-free 500, then 200.
    const rx = await receiver((_, attempt) => (attempt <= 2 ? (attempt === 1 ? 503 : 500) : 200))
    const metrics = new AlertMetrics()
    const groupId = uniqueName('webhook')
    const opts = {
      groupId,
      alertsTopic: topic,
      deadletterTopic: `${topic}.dlq`,
      retry: fast,
      codec,
      metrics,
      logger: testLogger('alerts'),
    }
    try {
      let c = await runAlertConsumer(
        log,
        webhookSink({ url: rx.url, secret: SECRET, timeoutMs: 2_000 }),
        opts,
      )
      for (let i = 0; i < 100 && rx.seen.filter((s) => s.status === 200).length < 3; i++)
        await new Promise((r) => setTimeout(r, 100))
      await c.close()
      const ok = rx.seen.filter((s) => s.status === 200)
      expect(ok.map((s) => s.eventId).sort()).toEqual(alerts.map((a) => `${a.alertId}:raised:${a.ts}`).sort())
      expect(rx.seen).toHaveLength(9) // 3 attempts each
      for (const s of ok) {
        expect(validSignature(s.signature, s.body)).toBe(true)
        expect(validSignature(s.signature, s.body.replace('40', '41'))).toBe(false)
        expect(JSON.parse(s.body)).toMatchObject({ ruleId: 'hot', event: 'raised' })
      }
      expect(
        (await metrics.registry.getSingleMetric('fleetstream_alerts_delivered_total')!.get()).values[0]!
          .value,
      ).toBe(3)
      // The same group again: everything was committed after delivery, nothing comes twice.
      c = await runAlertConsumer(log, webhookSink({ url: rx.url, secret: SECRET, timeoutMs: 2_000 }), opts)
      await new Promise((r) => setTimeout(r, 3_000))
      await c.close()
      expect(rx.seen).toHaveLength(9)
    } finally {
      await rx.close()
    }
  })

  it('sends an event the receiver refuses (4xx) to the dead-letter topic without retrying, and moves on', async () => {
    const topic = await alertsTopic([alert(7), alert(8)])
    const rx = await receiver((eventId) => (eventId.startsWith('a7') ? 422 : 200))
    const opts = {
      groupId: uniqueName('webhook-dlq'),
      alertsTopic: topic,
      deadletterTopic: `${topic}.dlq`,
      retry: fast,
      codec,
      metrics: new AlertMetrics(),
      logger: testLogger('alerts'),
    }
    const admin = await log.admin()
    await admin.ensureTopics([{ name: opts.deadletterTopic, partitions: 1, replicationFactor: 1 }])
    await admin.close()
    try {
      const c = await runAlertConsumer(
        log,
        webhookSink({ url: rx.url, secret: SECRET, timeoutMs: 2_000 }),
        opts,
      )
      const dead = await collect(
        log,
        { groupId: uniqueName('dlq-read'), topics: [opts.deadletterTopic] },
        (rs) => rs.length >= 1,
      )
      for (let i = 0; i < 50 && !rx.seen.some((s) => s.status === 200); i++)
        await new Promise((r) => setTimeout(r, 100))
      await c.close()
      expect(dead.map((r) => r.headers['fs-reason-code']!.toString())).toEqual(['FS_ALERTS_DELIVERY'])
      expect(dead[0]!.headers['fs-reason']!.toString()).toMatch(/HTTP 422/)
      expect(rx.seen.filter((s) => s.eventId.startsWith('a7'))).toHaveLength(1) // not retried
      expect(rx.seen.filter((s) => s.status === 200)).toHaveLength(1) // the next event went through
    } finally {
      await rx.close()
    }
  })
})

describe('consumers > alerts > MQTT downlink [kafka] [mosquitto]', () => {
  it("publishes each alert to the device's own downlink topic on Mosquitto", async () => {
    const env = serverEnv()
    const topic = await alertsTopic([alert(1, 'pump-7'), alert(2, 'pump-8')])
    const auth = { username: env.FS_MOSQUITTO_USER, password: env.FS_MOSQUITTO_PASSWORD }
    const sub = await connectMqtt(env.FS_MOSQUITTO_URL, { ...auth, clientId: uniqueName('sub') })
    const got: { topic: string; alert: Alert }[] = []
    sub.on('message', (t, payload) => got.push({ topic: t, alert: JSON.parse(payload.toString()) as Alert }))
    await sub.subscribeAsync('devices/+/downlink', { qos: 1 })
    const sink = await mqttDownlinkSink({
      url: env.FS_MOSQUITTO_URL,
      ...auth,
      clientId: uniqueName('alerts'),
      topic: 'devices/{deviceId}/downlink',
    })
    const c = await runAlertConsumer(log, sink, {
      groupId: uniqueName('mqtt'),
      alertsTopic: topic,
      deadletterTopic: `${topic}.dlq`,
      retry: fast,
      codec,
      metrics: new AlertMetrics(),
      logger: testLogger('alerts'),
    })
    try {
      for (let i = 0; i < 100 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 100))
      expect(got.map((g) => [g.topic, g.alert.deviceId]).sort()).toEqual([
        ['devices/pump-7/downlink', 'pump-7'],
        ['devices/pump-8/downlink', 'pump-8'],
      ])
    } finally {
      await c.close()
      await sub.endAsync()
    }
  })
})
