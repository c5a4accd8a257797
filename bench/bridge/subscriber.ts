/**
 * The yardstick's receiving side (bench/bridge.bench.ts): subscribes at QoS 1 to Mosquitto and
 * counts until `expected` messages arrived. Argument: JSON {url, username, password, topic,
 * expected}. Prints "ready" once subscribed, then one JSON line {received, firstAtMs, lastAtMs,
 * cpuS}, also when nothing more has come for IDLE_MS (the bench then fails instead of waiting
 * forever for messages the broker dropped).
 */
import mqtt from 'mqtt'

const job = JSON.parse(process.argv[2]!) as {
  url: string
  username: string
  password: string
  topic: string
  expected: number
}
const client = mqtt.connect(job.url, {
  username: job.username,
  password: job.password,
  clientId: `bench-sub-${process.pid}`,
  protocolVersion: 5,
  reconnectPeriod: 0,
})
const IDLE_MS = 15_000
let received = 0
let firstAtMs = 0
let lastAtMs = 0
const cpu0 = process.cpuUsage()
const report = () => {
  const cpu = process.cpuUsage(cpu0)
  process.stdout.write(
    `${JSON.stringify({ received, firstAtMs, lastAtMs, cpuS: (cpu.user + cpu.system) / 1e6 })}\n`,
  )
  client.end(true, () => process.exit(0))
}
const idle = setInterval(() => {
  if (received > 0 && Date.now() - lastAtMs > IDLE_MS) report()
}, 1000)
client.on('message', () => {
  lastAtMs = Date.now()
  if (received === 0) firstAtMs = lastAtMs
  if (++received === job.expected) {
    clearInterval(idle)
    report()
  }
})
client.on('connect', () => {
  client.subscribe(job.topic, { qos: 1 }, (err) => {
    if (err) throw err
    process.stdout.write('ready\n')
  })
})
client.on('error', (err) => {
  process.stderr.write(`${err.message}\n`)
  process.exit(1)
})
