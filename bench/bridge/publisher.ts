/**
 * One publisher process of bench/bridge.bench.ts. Argument: a JSON job
 *   {url, qos, devices:[{id, token}], topic, messages, window, connectOnly?, holdMs?}
 * Each device connects, then publishes `messages` readings keeping at most `window`
 * unacknowledged (QoS 1) or as fast as the socket takes them (QoS 0). Prints one JSON line:
 * {sent, acked, wallS, cpuS, latenciesMs (a sample)}.
 */
import mqtt, { type MqttClient } from 'mqtt'

interface Job {
  url: string
  qos: 0 | 1
  devices: { id: string; token: string }[]
  /** `{deviceId}` is replaced by the device id. */
  topic: string
  messages: number
  window: number
  protocolVersion?: 4 | 5
  /** Log every device in with these instead of its own id and token (the Mosquitto yardstick). */
  auth?: { username: string; password: string }
  /** Only connect and stay idle until stdin says "stop". */
  connectOnly?: boolean
  /** Connect the (single) device this many times (keeps the command line short). */
  repeat?: number
}

/** Resolves when the orchestrator writes `word` on stdin. */
function waitFor(word: string): Promise<void> {
  return new Promise((resolve) => {
    let buf = ''
    process.stdin.on('data', (c: Buffer) => {
      buf += c.toString()
      if (buf.includes(word)) resolve()
    })
  })
}

function connect(job: Job, d: { id: string; token: string }, n: number): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(job.url, {
      username: job.auth?.username ?? d.id,
      password: job.auth?.password ?? d.token,
      clientId: `${d.id}-${process.pid}-${n}`,
      protocolVersion: job.protocolVersion ?? 4,
      reconnectPeriod: 0,
      keepalive: 600,
      connectTimeout: 60_000,
    })
    c.once('connect', () => resolve(c))
    c.once('error', reject)
  })
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2]!) as Job
  if (job.repeat) job.devices = Array.from({ length: job.repeat }, () => job.devices[0]!)
  const clients: MqttClient[] = []
  for (let i = 0; i < job.devices.length; i += 200) {
    clients.push(...(await Promise.all(job.devices.slice(i, i + 200).map((d, k) => connect(job, d, i + k)))))
  }
  // Barrier: everyone connected (logins are not part of the measured window), then "go".
  process.stdout.write(`${JSON.stringify({ connected: clients.length })}\n`)
  if (job.connectOnly) {
    await waitFor('stop')
    await Promise.all(clients.map((c) => c.endAsync()))
    return
  }
  await waitFor('go')
  const latencies: number[] = []
  let acked = 0
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  await Promise.all(
    clients.map(async (c, i) => {
      const d = job.devices[i]!
      const topic = job.topic.replace('{deviceId}', d.id)
      const base = Date.now() - 3_600_000
      if (job.qos === 0) {
        for (let s = 0; s < job.messages; s++) {
          c.publish(
            topic,
            JSON.stringify({ ts: base + s, seq: s, temperature: 20 + (s % 10) / 10, humidity: 40 + (s % 7) }),
            { qos: 0 },
          )
          if (s % 500 === 499) await new Promise((r) => setImmediate(r))
        }
        await new Promise<void>((r) =>
          (c as unknown as { stream: NodeJS.WritableStream }).stream.write('', () => r()),
        )
        return
      }
      let next = 0
      await Promise.all(
        Array.from({ length: job.window }, async () => {
          while (next < job.messages) {
            const s = next++
            const sentAt = process.hrtime.bigint()
            await c.publishAsync(
              topic,
              JSON.stringify({
                ts: base + s,
                seq: s,
                temperature: 20 + (s % 10) / 10,
                humidity: 40 + (s % 7),
              }),
              { qos: 1 },
            )
            acked++
            if (s % 20 === 0) latencies.push(Number(process.hrtime.bigint() - sentAt) / 1e6)
          }
        }),
      )
    }),
  )
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu = process.cpuUsage(cpu0)
  process.stdout.write(
    `${JSON.stringify({ sent: job.messages * clients.length, acked, wallS, cpuS: (cpu.user + cpu.system) / 1e6, latenciesMs: latencies })}\n`,
  )
  await Promise.all(clients.map((c) => c.endAsync()))
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  },
)
