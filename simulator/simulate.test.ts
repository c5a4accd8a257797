import { createServer, type Server, type Socket } from 'node:net'
import { createServer as createHttpServer } from 'node:http'
import { simulate, type SimulateOptions } from './simulate'

/** A TCP peer that is not a working MQTT broker: it closes each connection, or never answers. */
async function badPeer(behaviour: 'close' | 'silent'): Promise<{ url: string; stop: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => undefined)
    // Close only once the CONNECT has arrived: the client is then waiting for its CONNACK.
    if (behaviour === 'close') socket.once('data', () => socket.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return {
    url: `mqtt://127.0.0.1:${port}`,
    stop: async () => {
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

const fleet = (url: string): SimulateOptions => ({
  devices: Array.from({ length: 5 }, (_, i) => ({ deviceId: `d-${i}`, token: 't' })),
  transport: 'mqtt',
  httpUrl: '',
  mqttUrl: url,
  readings: 3,
  intervalMs: 1000,
  batch: 1,
  concurrency: 5,
  faults: { outOfOrder: 0, late: 0, offline: 0, skew: 0, bad: 0 },
  lateMs: 0,
  skewMs: 0,
  connectFirst: true,
  connectTimeoutMs: 500,
})

describe('simulator > a broker that drops or ignores logins', () => {
  it.each(['close', 'silent'] as const)(
    'finishes and counts every reading as refused (peer: %s)',
    async (behaviour) => {
      const peer = await badPeer(behaviour)
      try {
        let timer: NodeJS.Timeout | undefined
        const summary = await Promise.race([
          simulate(fleet(peer.url)),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error('simulate did not finish within 5 s')), 5_000)
          }),
        ]).finally(() => clearTimeout(timer))
        expect(summary.rejected).toEqual({ MQTT_CONNECT: 15 })
        expect(summary.acknowledged).toBe(0)
        expect(summary.sent).toBe(0)
      } finally {
        await peer.stop()
      }
    },
    10_000,
  )
})

describe('simulator > ratePerS paces the fleet', () => {
  it('sends device i its j-th reading at (j·devices + i) / rate, stamped from the start', async () => {
    // An HTTP peer that accepts everything and notes when each reading arrived.
    const arrivals: { deviceId: string; seq: number; ts: number; at: number }[] = []
    const server = createHttpServer((req, res) => {
      const deviceId = Buffer.from(req.headers.authorization!.slice(6), 'base64').toString().split(':')[0]!
      let body = ''
      req.on('data', (c: Buffer) => (body += c.toString()))
      req.on('end', () => {
        const at = Date.now()
        const readings = JSON.parse(body) as { seq: number; timestamp: number }[]
        for (const r of readings) arrivals.push({ deviceId, seq: r.seq, ts: r.timestamp, at })
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ accepted: readings.length, duplicates: 0, rejected: [] }))
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as { port: number }).port
    const rate = 40 // one reading every 25 ms across the fleet
    const before = Date.now()
    try {
      const summary = await simulate({
        ...fleet(''),
        devices: Array.from({ length: 4 }, (_, i) => ({ deviceId: `p-${i}`, token: 't' })),
        transport: 'http',
        httpUrl: `http://127.0.0.1:${port}`,
        readings: 3,
        intervalMs: 100, // devices × 1000 / rate: each device reports every 100 ms
        concurrency: 4,
        ratePerS: rate,
      })
      expect(summary.acknowledged).toBe(12)
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
    expect(arrivals).toHaveLength(12)
    // Every slot once, and no reading arrives before its turn (arrival order is not checked: a
    // first request's connection setup on a busy machine can outlast the 25 ms between turns).
    const slot = (a: (typeof arrivals)[number]) => a.seq * 4 + Number(a.deviceId.slice(2))
    const ordered = [...arrivals].sort((a, b) => a.at - b.at)
    expect(arrivals.map(slot).sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, k) => k))
    for (const a of ordered) expect(a.at - before).toBeGreaterThanOrEqual(slot(a) * 25 - 2)
    expect(ordered[11]!.at - before).toBeLessThan(11 * 25 + 2_000) // paced, not stalled
    // Stamped as sent: the first readings carry the start time, then one interval per reading.
    for (const a of arrivals) {
      expect(a.ts - a.seq * 100).toBeGreaterThanOrEqual(before)
      expect(a.ts - a.seq * 100).toBeLessThanOrEqual(before + 1_000)
    }
  }, 10_000)

  it('refuses a rate that is not positive', async () => {
    await expect(simulate({ ...fleet('mqtt://127.0.0.1:1'), ratePerS: 0 })).rejects.toThrow(
      'ratePerS must be > 0, got 0',
    )
  })
})
