import { PassThrough } from 'node:stream'
import mqttPacket from 'mqtt-packet'
import { PacketSizeGuard } from './packet-guard'

function publish(bytes: number): Buffer {
  return mqttPacket.generate({
    cmd: 'publish',
    topic: 't',
    payload: Buffer.alloc(bytes),
    qos: 1,
    messageId: 1,
    retain: false,
    dup: false,
  })
}

function feed(chunks: Buffer[], max: number): Promise<{ passed: Buffer; tooLarge: number | undefined }> {
  return new Promise((resolve) => {
    const socket = new PassThrough()
    let tooLarge: number | undefined
    const guard = new PacketSizeGuard(socket, max, (n) => (tooLarge = n))
    const out: Buffer[] = []
    guard.on('data', (c: Buffer) => out.push(c))
    guard.on('error', () => undefined)
    guard.on('close', () => resolve({ passed: Buffer.concat(out), tooLarge }))
    for (const c of chunks) socket.write(c)
    setTimeout(() => {
      socket.end()
      guard.destroy()
    }, 20)
  })
}

describe('bridge > mqtt > packet size guard', () => {
  it('passes packets under the limit through unchanged, across any chunking', async () => {
    const stream = Buffer.concat([
      publish(10),
      mqttPacket.generate({ cmd: 'pingreq' }),
      publish(200),
      publish(0),
    ])
    const chunks = Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1)) // byte by byte
    const r = await feed(chunks, 1000)
    expect(r.tooLarge).toBeUndefined()
    expect(r.passed.equals(stream)).toBe(true)
  })

  it('refuses a packet that declares more than the limit, before its body arrives', async () => {
    const big = publish(5000)
    const r = await feed([Buffer.concat([publish(10), big.subarray(0, 5)])], 1000)
    expect(r.tooLarge).toBeGreaterThan(1000)
    expect(r.passed.length).toBeLessThan(big.length)
  })

  it('refuses a declared 256 MB packet from its header alone', async () => {
    const r = await feed([Buffer.from([0x32, 0xff, 0xff, 0xff, 0x7f])], 1_000_000)
    // Refused as soon as the partial length passes the limit (after 3 of its 4 length bytes).
    expect(r.tooLarge).toBeGreaterThan(1_000_000)
    expect(r.passed.length).toBe(0)
  })
})
