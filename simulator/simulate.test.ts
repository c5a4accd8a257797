import { createServer, type Server, type Socket } from 'node:net'
import { createServer as createHttpServer } from 'node:http'
import { retryAfterMs, simulate, type SimulateOptions } from './simulate'

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

type Arrival = { deviceId: string; seq: number; ts: number; at: number; size: number }

/** An HTTP peer that accepts everything and notes when each reading arrived, and in how big a request. */
async function httpPeer(): Promise<{ url: string; arrivals: Arrival[]; stop: () => Promise<void> }> {
  const arrivals: Arrival[] = []
  const server = createHttpServer((req, res) => {
    const deviceId = Buffer.from(req.headers.authorization!.slice(6), 'base64').toString().split(':')[0]!
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString()))
    req.on('end', () => {
      const at = Date.now()
      const readings = JSON.parse(body) as { seq: number; timestamp: number }[]
      for (const r of readings)
        arrivals.push({ deviceId, seq: r.seq, ts: r.timestamp, at, size: readings.length })
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ accepted: readings.length, duplicates: 0, rejected: [] }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    arrivals,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

describe('simulator > ratePerS paces the fleet', () => {
  /** 4 devices × `readings` at 40 readings/s (one every 25 ms across the fleet), `batch` per request. */
  const paced = async (readings: number, batch: number) => {
    const peer = await httpPeer()
    const before = Date.now()
    try {
      const summary = await simulate({
        ...fleet(''),
        devices: Array.from({ length: 4 }, (_, i) => ({ deviceId: `p-${i}`, token: 't' })),
        transport: 'http',
        httpUrl: peer.url,
        readings,
        intervalMs: 100, // devices × 1000 / rate: each device reports every 100 ms
        batch,
        concurrency: 4,
        ratePerS: 40,
      })
      expect(summary.acknowledged).toBe(4 * readings)
    } finally {
      await peer.stop()
    }
    expect(peer.arrivals).toHaveLength(4 * readings)
    return { before, arrivals: peer.arrivals }
  }

  it('sends device i its j-th reading at (j·devices + i) / rate, stamped from the start', async () => {
    const { before, arrivals } = await paced(3, 1)
    // Every slot once, and no reading arrives before its turn (arrival order is not checked: a
    // first request's connection setup on a busy machine can outlast the 25 ms between turns).
    const slot = (a: Arrival) => a.seq * 4 + Number(a.deviceId.slice(2))
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

  it('spreads messages of several readings evenly: device i at (j·devices + i·batch) / rate', async () => {
    const { before, arrivals } = await paced(6, 3)
    expect(arrivals.every((a) => a.size === 3)).toBe(true)
    // Message turns 75 ms apart, none twice and none early: without the i·batch spread all four
    // devices' first messages would be due in the first 100 ms, then none for 200 ms.
    const turn = (a: Arrival) => (a.seq - (a.seq % 3)) * 4 + Number(a.deviceId.slice(2)) * 3
    const turns = [...new Set(arrivals.map(turn))].sort((a, b) => a - b)
    expect(turns).toEqual(Array.from({ length: 8 }, (_, k) => k * 3))
    for (const a of arrivals) expect(a.at - before).toBeGreaterThanOrEqual(turn(a) * 25 - 2)
    // A message's last reading is stamped about when the message goes, none later: a device
    // reports what it has measured.
    for (const a of arrivals) {
      expect(a.ts).toBeLessThanOrEqual(a.at + 2)
      if (a.seq % 3 === 2) expect(a.ts - before).toBeGreaterThanOrEqual(Math.floor(a.seq / 3) * 300)
    }
  }, 10_000)

  it('refuses a rate that is not positive', async () => {
    await expect(simulate({ ...fleet('mqtt://127.0.0.1:1'), ratePerS: 0 })).rejects.toThrow(
      'ratePerS must be > 0, got 0',
    )
  })
})

describe('simulator > Retry-After', () => {
  it('reads seconds or an HTTP date, caps the wait at 30 s, and ignores what it cannot read', () => {
    const now = Date.parse('2026-11-28T12:00:00Z')
    expect(retryAfterMs('2', now)).toBe(2000)
    expect(retryAfterMs('0', now)).toBe(0)
    expect(retryAfterMs('Sat, 28 Nov 2026 12:00:05 GMT', now)).toBe(5000)
    expect(retryAfterMs('Sat, 28 Nov 2026 11:59:00 GMT', now)).toBe(0)
    expect(retryAfterMs('3600', now)).toBe(30_000)
    expect(retryAfterMs(null, now)).toBeUndefined()
    expect(retryAfterMs('', now)).toBeUndefined()
    expect(retryAfterMs('soon', now)).toBeUndefined()
  })
})
