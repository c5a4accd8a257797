import type { MqttClient } from 'mqtt'
import mqtt from 'mqtt'
import { deviceSignals, prng, type Signals } from './signals'

/** Faults, each a fraction in [0, 1]. */
export interface Faults {
  /** Readings sent after the one that follows them. */
  outOfOrder: number
  /** Readings whose event time is `lateMs` older than it should be. */
  late: number
  /** Devices that go offline halfway through. */
  offline: number
  /** Devices whose clock is off by up to ±`skewMs`. */
  skew: number
  /** Readings sent as a payload the bridge must refuse (HTTP only). */
  bad: number
}

export interface SimulateOptions {
  devices: { deviceId: string; token: string }[]
  transport: 'http' | 'mqtt'
  httpUrl: string
  mqttUrl: string
  /** Readings per device. */
  readings: number
  /** Event time between a device's readings. */
  intervalMs: number
  /** Event time of the first reading (default: so that the last one is now). */
  startTs?: number
  /**
   * Readings per HTTP request or MQTT message (a JSON array: the bridge's batch form), as a
   * device that buffers readings and reports them together does. A bad payload goes alone.
   */
  batch: number
  /** Devices sending at once. */
  concurrency: number
  /**
   * Paces the fleet at this many readings a second, spread evenly: device i sends its j-th
   * reading (j·devices + i) / ratePerS seconds after sending starts, as a fleet reporting on a
   * schedule does (with `batch` > 1, the message that starts with its j-th reading at
   * (j·devices + i·batch) / ratePerS); a message whose turn comes while its device still waits
   * for an ack goes when the ack arrives. Without it every device sends as fast as its acks
   * come back. With it and no `startTs`, the first messages' last readings are stamped with the
   * time sending starts.
   */
  ratePerS?: number
  faults: Faults
  lateMs: number
  skewMs: number
  seed?: number
  /**
   * A scripted out-of-range episode on every device: readings `from` to `from + length - 1`
   * carry `metric` = `value`. No fault touches the episode or the readings on either side of it,
   * so each device gives exactly one crossing and one return (a test expects one alert raised
   * and cleared per device). Offline devices too: put it in the first half.
   */
  episode?: {
    from: number
    length: number
    metric: keyof Signals
    value: number
  }
  /** MQTT: every device connects before any sends (all devices at once; for benchmarks, so
   * that logins are not counted as sending time). */
  connectFirst?: boolean
  /** MQTT: how long a device waits for its CONNACK before counting as refused (default 30 s). */
  connectTimeoutMs?: number
  /**
   * MQTT: when a device's connection is lost (the bridge pushing back closes it, a restart) or
   * a message gets no PUBACK in 30 s, the device reconnects, after 0.25, 0.5, 1, 2… s, and sends
   * that message again, as real devices do (the bridge drops the copies it already has), up to
   * this many times for one message (default 3); then it gives up, and the rest of its readings
   * are counted unanswered. HTTP: a message answered 429 or 503 with a `Retry-After` (the
   * bridge's rate limit and pushback) is sent again after that wait, up to this many times;
   * then the refusal counts under `rejected`. 0: neither.
   */
  retries?: number
  onProgress?: (done: number, total: number) => void
}

/** What the simulator did, to compare with the pipeline's own counts. */
export interface Summary {
  devices: number
  sent: number
  acknowledged: number
  rejected: Record<string, number>
  /** Sent but neither acknowledged nor refused (connection lost, timeout). */
  unanswered: number
  /** MQTT: connections made again after one was lost (see `retries`). */
  reconnects: number
  /** HTTP: messages sent again after a 429 or 503 with Retry-After (each refusal is counted by
   * the bridge too: its refusals are `retried` plus those under `rejected`). */
  retried: number
  offlineDevices: number
  /** From the first reading sent to the last answer (with connectFirst: after every login). */
  sendSeconds: number
  faults: { outOfOrder: number; late: number; skewedDevices: number; bad: number }
  seconds: number
}

interface Planned {
  body: Record<string, unknown> | string
  bad: boolean
}

/** A device's readings in the groups it sends them in (`at`: the first one's index): up to
 * `batch` good readings together, a bad payload alone. */
function* groups(readings: Planned[], batch: number): Generator<{ at: number; group: Planned[] }> {
  for (let i = 0; i < readings.length;) {
    const group = [readings[i]!]
    if (!group[0]!.bad)
      while (group.length < batch && i + group.length < readings.length && !readings[i + group.length]!.bad)
        group.push(readings[i + group.length]!)
    yield { at: i, group }
    i += group.length
  }
}

/**
 * Runs a fleet of simulated devices against the bridge (MQTT QoS 1 or HTTP), `concurrency`
 * devices at a time, each sending its readings in order (except the out-of-order faults) and
 * waiting for each acknowledgement before the next, as a device with a small buffer does.
 */
export async function simulate(o: SimulateOptions): Promise<Summary> {
  if (o.transport === 'mqtt' && o.faults.bad > 0)
    throw new Error('bad payloads are sent over HTTP only (MQTT 3.1.1 refuses by closing the connection)')
  const rand = prng(o.seed ?? 1)
  if (o.ratePerS !== undefined && !(o.ratePerS > 0))
    throw new Error(`ratePerS must be > 0, got ${o.ratePerS}`)
  if (o.retries !== undefined && !(Number.isInteger(o.retries) && o.retries >= 0))
    throw new Error(`retries must be a whole number >= 0, got ${o.retries}`)
  // Paced, a message's last reading is stamped (about) when it is sent: a device reports what it
  // has measured. Otherwise the last reading is stamped now.
  const startTs =
    o.startTs ??
    (o.ratePerS ? Date.now() - (o.batch - 1) * o.intervalMs : Date.now() - (o.readings - 1) * o.intervalMs)
  const s: Summary = {
    devices: o.devices.length,
    sent: 0,
    acknowledged: 0,
    rejected: {},
    unanswered: 0,
    reconnects: 0,
    retried: 0,
    offlineDevices: 0,
    faults: { outOfOrder: 0, late: 0, skewedDevices: 0, bad: 0 },
    seconds: 0,
    sendSeconds: 0,
  }
  let sendStart = 0
  let waiting = o.connectFirst ? o.devices.length : 0
  let release!: () => void
  const allConnected = new Promise<void>((r) => (release = r))
  /** With connectFirst: resolves once every device has connected (or failed to). */
  const barrier = () => {
    if (!o.connectFirst) return Promise.resolve()
    if (--waiting === 0) release()
    return allConnected
  }
  const total = o.devices.length * o.readings
  const started = Date.now()
  let done = 0
  const progress = () => o.onProgress?.(done, total)

  /** A device's readings as it will send them, faults applied. */
  const plan = (index: number): Planned[] => {
    const signal = deviceSignals(index)
    const skew = rand() < o.faults.skew ? Math.round((rand() * 2 - 1) * o.skewMs) : 0
    if (skew) s.faults.skewedDevices++
    const offline = rand() < o.faults.offline
    if (offline) s.offlineDevices++
    const count = offline ? Math.floor(o.readings / 2) : o.readings
    const out: Planned[] = []
    const ep = o.episode
    /** Reading i is in the episode or next to it: no fault for it. */
    const guarded = (i: number) => ep !== undefined && i >= ep.from - 1 && i <= ep.from + ep.length
    for (let i = 0; i < count; i++) {
      const ts = startTs + i * o.intervalMs
      const metrics = signal(ts)
      if (ep && i >= ep.from && i < ep.from + ep.length) metrics[ep.metric] = ep.value
      if (guarded(i)) {
        out.push({ body: { timestamp: ts + skew, seq: i, ...metrics }, bad: false })
        continue
      }
      if (rand() < o.faults.bad) {
        s.faults.bad++
        out.push({ body: `{"timestamp": ${ts}, "temperature": `, bad: true })
        continue
      }
      const late = rand() < o.faults.late
      if (late) s.faults.late++
      out.push({ body: { timestamp: ts + skew - (late ? o.lateMs : 0), seq: i, ...metrics }, bad: false })
    }
    for (let i = 0; i + 1 < out.length; i++)
      if (!guarded(i) && !guarded(i + 1) && rand() < o.faults.outOfOrder) {
        ;[out[i], out[i + 1]] = [out[i + 1]!, out[i]!]
        s.faults.outOfOrder++
        i++
      }
    return out
  }
  /**
   * With ratePerS: waits for the turn of the message that starts with reading `j` of device
   * `index` (`sendStart` is set). Messages of `batch` readings are spread evenly too: device
   * i's start `i · batch / rate` s in, so that the fleet does not send in bursts.
   */
  const turn = (index: number, j: number): Promise<void> | undefined => {
    if (!o.ratePerS) return undefined
    const wait = sendStart + ((j * o.devices.length + index * o.batch) * 1000) / o.ratePerS - Date.now()
    return wait > 0 ? new Promise((r) => setTimeout(r, wait)) : undefined
  }
  const refuse = (code: string, n = 1) => (s.rejected[code] = (s.rejected[code] ?? 0) + n)

  const retries = o.retries ?? 3

  const viaHttp = async (index: number, readings: Planned[]) => {
    const d = o.devices[index]!
    sendStart ||= Date.now()
    const auth = `Basic ${Buffer.from(`${d.deviceId}:${d.token}`).toString('base64')}`
    for (const { at, group } of groups(readings, o.batch)) {
      await turn(index, at)
      s.sent += group.length
      const body = group[0]!.bad ? (group[0]!.body as string) : JSON.stringify(group.map((g) => g.body))
      for (let attempt = 0; ; attempt++) {
        try {
          const res = await fetch(`${o.httpUrl}/v1/telemetry`, {
            method: 'POST',
            headers: { Authorization: auth, 'Content-Type': 'application/json' },
            body,
            signal: AbortSignal.timeout(30_000),
          })
          const json = (await res.json().catch(() => ({}))) as {
            accepted?: number
            duplicates?: number
            rejected?: { code: string }[]
            error?: { code: string }
          }
          const wait =
            res.status === 429 || res.status === 503
              ? retryAfterMs(res.headers.get('retry-after'))
              : undefined
          if (wait !== undefined && attempt < retries) {
            s.retried++
            await new Promise((r) => setTimeout(r, wait))
            continue
          }
          if (json.accepted !== undefined) {
            s.acknowledged += json.accepted + (json.duplicates ?? 0)
            for (const r of json.rejected ?? []) refuse(r.code)
          } else refuse(json.error?.code ?? `HTTP_${res.status}`, group.length)
        } catch {
          s.unanswered += group.length
        }
        break
      }
      done += group.length
      progress()
    }
  }

  const viaMqtt = async (index: number, readings: Planned[]) => {
    const d = o.devices[index]!
    // allowRetries false: without it, mqtt.js's connectAsync never settles when the socket
    // closes before a CONNACK (a busy broker, the connect timeout) and reconnecting is off,
    // which held up the whole fleet at its connect barrier (a bench run hung this way).
    // mqtt.js's own reconnecting is off: the device decides (below) when to connect again.
    const connect = () =>
      mqtt.connectAsync(
        o.mqttUrl,
        {
          clientId: d.deviceId,
          username: d.deviceId,
          password: d.token,
          reconnectPeriod: 0,
          connectTimeout: o.connectTimeoutMs ?? 30_000,
        },
        false,
      )
    /** Resolves when the connection closes: a lost connection fails what is in flight. */
    const closed = (c: MqttClient) => new Promise<'lost'>((resolve) => c.once('close', () => resolve('lost')))
    const end = (c: MqttClient) =>
      Promise.race([c.endAsync(true).catch(() => undefined), new Promise((r) => setTimeout(r, 1000).unref())])
    let client: MqttClient | undefined
    try {
      client = await connect()
    } catch {
      refuse('MQTT_CONNECT', readings.length)
      done += readings.length
      await barrier()
      return progress()
    }
    await barrier()
    sendStart ||= Date.now()
    let lost = closed(client)
    let gaveUp = false
    /** Publishes one message, reconnecting and sending it again as needed: whether it was acked. */
    const deliver = async (body: string): Promise<boolean> => {
      for (let attempt = 0; attempt <= retries; attempt++) {
        if (attempt > 0) {
          await new Promise((r) => setTimeout(r, Math.min(5_000, 250 * 2 ** (attempt - 1))))
          await end(client!)
          try {
            client = await connect()
          } catch {
            continue
          }
          lost = closed(client)
          s.reconnects++
        }
        try {
          const answer = await Promise.race([
            client!
              .publishAsync(`devices/${d.deviceId}/telemetry`, body, { qos: 1 })
              .then(() => 'acked' as const),
            lost,
            new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 30_000).unref()),
          ])
          if (answer === 'acked') return true
        } catch {
          // refused by the client (closed while publishing): as lost
        }
      }
      return false
    }
    try {
      for (const { at, group } of groups(readings, o.batch)) {
        if (!gaveUp) await turn(index, at)
        s.sent += group.length
        const body = JSON.stringify(group.length === 1 ? group[0]!.body : group.map((g) => g.body))
        if (!gaveUp && (await deliver(body))) s.acknowledged += group.length
        else {
          s.unanswered += group.length
          gaveUp = true
        }
        done += group.length
        progress()
      }
    } finally {
      await end(client)
    }
  }

  let next = 0
  const worker = async () => {
    while (next < o.devices.length) {
      const index = next++
      const readings = plan(index)
      await (o.transport === 'http' ? viaHttp : viaMqtt)(index, readings)
      done += o.readings - readings.length // an offline device's unsent half
    }
  }
  await Promise.all(Array.from({ length: Math.min(o.concurrency, o.devices.length) }, worker))
  s.seconds = (Date.now() - started) / 1000
  s.sendSeconds = (Date.now() - (sendStart || started)) / 1000
  progress()
  return s
}

/** A Retry-After header's wait (RFC 9110: seconds or an HTTP date), capped at 30 s; undefined if absent or unreadable. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (header === null || header.trim() === '') return undefined
  const seconds = Number(header)
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(header) - now
  return Number.isNaN(ms) ? undefined : Math.min(30_000, Math.max(0, ms))
}
