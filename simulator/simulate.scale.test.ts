import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import v8 from 'node:v8'
import vm from 'node:vm'
import { simulate } from './simulate'

// The simulator's own scale: 100,000 devices, each with its own credentials, over HTTP. The
// receiver here only checks who sent what and answers like the bridge's /v1/telemetry; the
// bridge itself is tested with the real pipeline in simulate.int.test.ts (500 devices; the
// pipeline's own rate is bench:up's business). MQTT is not tried at this size: one client
// address has about 28,000 ephemeral ports towards one broker port.
describe('simulator > 100,000 devices', () => {
  it('sends every device its readings as itself and accounts for each answer', async () => {
    const N = 100_000
    const seen = new Map<string, number>()
    let wrongSender = 0
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      let body = ''
      req.on('data', (c: Buffer) => (body += c.toString()))
      req.on('end', () => {
        const [user] = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64')
          .toString()
          .split(':')
        const readings = JSON.parse(body) as { seq: number }[]
        if (!user || !/^scale-\d+$/.test(user)) wrongSender++
        seen.set(user!, (seen.get(user!) ?? 0) + readings.length)
        res.setHeader('content-type', 'application/json')
        // Every 1,000th device is refused, to see refusals counted by reason.
        if (Number(user!.slice(6)) % 1000 === 999) {
          res.statusCode = 429
          return res.end(JSON.stringify({ error: { code: 'FS_BRIDGE_RATE_LIMITED', message: 'slow down' } }))
        }
        res.end(JSON.stringify({ accepted: readings.length, duplicates: 0, rejected: [] }))
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    // A collector to measure live memory, not garbage not yet collected.
    v8.setFlagsFromString('--expose-gc')
    const gc = vm.runInNewContext('gc') as () => void
    const heap = () => (gc(), process.memoryUsage().heapUsed)
    const devices = Array.from({ length: N }, (_, i) => ({ deviceId: `scale-${i}`, token: `t${i}` }))
    const heapBefore = heap()
    let lastProgress = 0
    try {
      const summary = await simulate({
        devices,
        transport: 'http',
        httpUrl: url,
        mqttUrl: '',
        readings: 1,
        intervalMs: 60_000,
        batch: 1,
        concurrency: 200,
        faults: { outOfOrder: 0, late: 0, offline: 0, skew: 0, bad: 0 },
        lateMs: 0,
        skewMs: 0,
        onProgress: (done) => (lastProgress = done),
      })
      expect(summary).toMatchObject({
        devices: N,
        sent: N,
        acknowledged: N - N / 1000,
        rejected: { FS_BRIDGE_RATE_LIMITED: N / 1000 },
        unanswered: 0,
      })
      expect(lastProgress).toBe(N)
      expect(wrongSender).toBe(0)
      expect(seen.size).toBe(N)
      expect([...seen.values()].every((n) => n === 1)).toBe(true)
      // The simulator plans a device's readings when it starts it: nothing per device is kept
      // after its turn. Measured without the receiver's own state (its map of 100,000 senders,
      // its connections), and once the event loop has run: right after the last answer, the
      // closing sockets' state is still live (13-18 MB here, 66 MB once on a loaded CI machine),
      // and a second later it is gone (5 MB at 100,000 devices, 6 MB at 20,000: flat). The
      // least of five readings 200 ms apart; the bound is ~170 bytes a device.
      seen.clear()
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
      let retained = Infinity
      for (let i = 0; i < 5; i++) {
        await new Promise((r) => setTimeout(r, 200))
        retained = Math.min(retained, heap() - heapBefore)
      }
      expect(retained).toBeLessThan(16 * 1024 * 1024)
    } finally {
      if (server.listening) await new Promise((r) => server.close(r))
    }
  }, 300_000)
})
