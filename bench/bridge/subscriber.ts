/**
 * The yardstick's receiving side (bench/bridge.bench.ts): subscribes at QoS 1 to Mosquitto and
 * counts until `expected` messages arrived. Argument: JSON {url, username, password, topic,
 * expected}. Prints "ready" once subscribed, then one JSON line {received, firstAtMs, lastAtMs, cpuS}.
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
let received = 0
let firstAtMs = 0
const cpu0 = process.cpuUsage()
client.on('message', () => {
  if (received === 0) firstAtMs = Date.now()
  if (++received === job.expected) {
    const cpu = process.cpuUsage(cpu0)
    process.stdout.write(
      `${JSON.stringify({ received, firstAtMs, lastAtMs: Date.now(), cpuS: (cpu.user + cpu.system) / 1e6 })}\n`,
    )
    client.end(true, () => process.exit(0))
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
