import { createServer, type Server, type Socket } from 'node:net'
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
