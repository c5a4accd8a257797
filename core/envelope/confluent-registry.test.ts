import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { SchemaError } from '../errors'
import { AvroCodec } from './codec'
import { ConfluentSchemaRegistry, loadBundledSchema } from './registry'
import type { Telemetry } from './telemetry'

// No Confluent Schema Registry server can be installed on these machines. This local HTTP
// server answers the REST API v1 calls the client makes, with the documented shapes, so the
// client's requests (paths, content type, auth, body) and its error handling are checked.
describe('core > envelope > Confluent Schema Registry client', () => {
  let server: Server
  let url: string
  const requests: { method: string; url: string; auth?: string; contentType?: string; body: string }[] = []
  const schemas: string[] = []
  let failNext = 0

  const body = (req: IncomingMessage) =>
    new Promise<string>((resolve) => {
      let s = ''
      req.on('data', (c) => (s += c))
      req.on('end', () => resolve(s))
    })

  beforeAll(async () => {
    server = createServer(async (req, res) => {
      const text = await body(req)
      requests.push({
        method: req.method!,
        url: req.url!,
        auth: req.headers.authorization,
        contentType: req.headers['content-type'],
        body: text,
      })
      res.setHeader('Content-Type', 'application/vnd.schemaregistry.v1+json')
      if (failNext > 0) {
        failNext--
        res.statusCode = 500
        return res.end('{"error_code":50001,"message":"store error"}')
      }
      let m: RegExpExecArray | null
      if (req.method === 'POST' && (m = /^\/subjects\/([^/]+)\/versions$/.exec(req.url!))) {
        const { schema } = JSON.parse(text) as { schema: string }
        let id = schemas.indexOf(schema) + 1
        if (id === 0) id = schemas.push(schema)
        return res.end(JSON.stringify({ id: 100 + id }))
      }
      if (req.method === 'GET' && (m = /^\/schemas\/ids\/(\d+)$/.exec(req.url!))) {
        const s = schemas[Number(m[1]) - 101]
        if (!s) {
          res.statusCode = 404
          return res.end('{"error_code":40403,"message":"Schema not found"}')
        }
        return res.end(JSON.stringify({ schema: s }))
      }
      if (req.method === 'POST' && /^\/compatibility\/subjects\/[^/]+\/versions\/latest$/.test(req.url!)) {
        return res.end(JSON.stringify({ is_compatible: true }))
      }
      res.statusCode = 404
      res.end('{"error_code":404,"message":"not found"}')
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
  })

  afterAll(() => new Promise<void>((r) => server.close(() => r())))

  it('registers under the subject with the registry content type and basic auth, then caches the id', async () => {
    const reg = new ConfluentSchemaRegistry({ url, username: 'svc', password: 'pw' })
    const schema = loadBundledSchema('telemetry.avsc')
    const before = requests.length
    const id = await reg.register('iot.telemetry.raw-value', schema)
    expect(id).toBe(101)
    expect(await reg.register('iot.telemetry.raw-value', schema)).toBe(101)
    const sent = requests.slice(before)
    expect(sent).toHaveLength(1)
    expect(sent[0]).toMatchObject({
      method: 'POST',
      url: '/subjects/iot.telemetry.raw-value/versions',
      auth: `Basic ${Buffer.from('svc:pw').toString('base64')}`,
      contentType: 'application/vnd.schemaregistry.v1+json',
    })
    expect(JSON.parse(JSON.parse(sent[0]!.body).schema)).toEqual(schema)
  })

  it('resolves a writer schema by id for a codec on another registry client', async () => {
    const writer = await AvroCodec.create<Telemetry>(
      new ConfluentSchemaRegistry({ url }),
      's',
      loadBundledSchema('telemetry.avsc'),
    )
    const reader = await AvroCodec.create<Telemetry>(
      new ConfluentSchemaRegistry({ url }),
      's',
      loadBundledSchema('telemetry.avsc'),
    )
    const v: Telemetry = {
      deviceId: 'd',
      tenant: null,
      ts: 1,
      receivedAt: 2,
      seq: null,
      metrics: { a: 1 },
      meta: {},
      source: 'http',
    }
    expect(await reader.decode(writer.encode(v))).toEqual(v)
  })

  it('asks the registry about compatibility', async () => {
    expect(
      await new ConfluentSchemaRegistry({ url }).isCompatible('s', loadBundledSchema('telemetry.avsc')),
    ).toBe(true)
  })

  it('reports an unknown id as a non-retriable SchemaError', async () => {
    const err = await new ConfluentSchemaRegistry({ url }).schemaById(999).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SchemaError)
    expect((err as SchemaError).retriable).toBe(false)
    expect((err as Error).message).toMatch(/404/)
  })

  it('reports a server error as retriable, and an unreachable registry as retriable', async () => {
    failNext = 1
    const err = await new ConfluentSchemaRegistry({ url })
      .register('x', loadBundledSchema('telemetry.avsc'))
      .catch((e: unknown) => e)
    expect((err as SchemaError).retriable).toBe(true)
    const down = await new ConfluentSchemaRegistry({ url: 'http://127.0.0.1:9' })
      .schemaById(1)
      .catch((e: unknown) => e)
    expect(down).toBeInstanceOf(SchemaError)
    expect((down as SchemaError).retriable).toBe(true)
  })
})
