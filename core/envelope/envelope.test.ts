import { readFileSync } from 'node:fs'
import path from 'node:path'
import { EnvelopeError, SchemaError } from '../errors'
import { AvroCodec } from './codec'
import { LocalSchemaRegistry } from './registry'
import { createTelemetryCodec, TELEMETRY_SUBJECT, type Telemetry } from './telemetry'
import { decodeWire, encodeWire, wireSchemaId } from './wire'

const fixtures = path.resolve(__dirname, '../../schemas/__fixtures__')
const v1Value = JSON.parse(readFileSync(path.join(fixtures, 'telemetry.v1.json'), 'utf8')) as Telemetry
const v1Bytes = Buffer.from(readFileSync(path.join(fixtures, 'telemetry.v1.hex'), 'utf8').trim(), 'hex')

describe('core > envelope > wire format', () => {
  it('writes magic byte 0 and the schema id big-endian before the payload', () => {
    const framed = encodeWire(0x01020304, Buffer.from([0xaa, 0xbb]))
    expect([...framed]).toEqual([0x00, 0x01, 0x02, 0x03, 0x04, 0xaa, 0xbb])
  })

  it('reads back id and payload', () => {
    const { schemaId, payload } = decodeWire(Buffer.from([0, 0, 0, 1, 0x2c, 9, 8]))
    expect(schemaId).toBe(300)
    expect([...payload]).toEqual([9, 8])
  })

  it.each([
    ['empty', Buffer.alloc(0), /too short/],
    ['4 bytes', Buffer.from([0, 0, 0, 1]), /too short/],
    ['wrong magic', Buffer.from([1, 0, 0, 0, 1, 0]), /magic byte 1/],
    ['JSON text', Buffer.from('{"a":1}'), /magic byte 123/],
  ])('rejects %s with an EnvelopeError', (_name, bytes, msg) => {
    expect(() => decodeWire(bytes)).toThrow(EnvelopeError)
    expect(() => decodeWire(bytes)).toThrow(msg)
  })

  it('peeks at the schema id without decoding (null when not framed)', () => {
    expect(wireSchemaId(Buffer.from([0, 0, 0, 1, 0x2c, 9, 8]))).toBe(300)
    expect(wireSchemaId(Buffer.from([0, 0, 0, 1, 0x2c]))).toBe(300)
    for (const b of [null, Buffer.alloc(0), Buffer.from([0, 0, 0, 1]), Buffer.from('{"a":1}')])
      expect(wireSchemaId(b)).toBeNull()
  })

  it('rejects ids that are not int32', () => {
    expect(() => encodeWire(-1, Buffer.alloc(0))).toThrow(EnvelopeError)
    expect(() => encodeWire(2 ** 31, Buffer.alloc(0))).toThrow(EnvelopeError)
  })
})

describe('core > envelope > telemetry codec', () => {
  let codec: AvroCodec<Telemetry>
  beforeAll(async () => {
    codec = await createTelemetryCodec(new LocalSchemaRegistry())
  })

  it('uses the bundled schema id 1', () => {
    expect(codec.schemaId).toBe(1)
  })

  it('round-trips a full envelope', async () => {
    const framed = codec.encode(v1Value)
    expect(framed[0]).toBe(0)
    expect(framed.readInt32BE(1)).toBe(1)
    expect(await codec.decode(framed)).toEqual(v1Value)
  })

  it('round-trips optional fields as null and empty maps', async () => {
    const v: Telemetry = {
      deviceId: 'd',
      tenant: null,
      ts: 0,
      receivedAt: 1,
      seq: null,
      metrics: {},
      meta: {},
      source: 'http',
    }
    expect(await codec.decode(codec.encode(v))).toEqual(v)
  })

  it('keeps metric value types: number, boolean, string', async () => {
    const v = { ...v1Value, metrics: { a: 1.25, b: true, c: 'x', d: -0.5, big: 1e300 } }
    const back = await codec.decode(codec.encode(v))
    expect(back.metrics).toEqual(v.metrics)
    expect(typeof back.metrics.b).toBe('boolean')
  })

  it('decodes the committed v1 fixture bytes (backward compatibility over time)', async () => {
    expect(await codec.decode(v1Bytes)).toEqual(v1Value)
  })

  it('encodes the v1 fixture to the same bytes (the encoding is stable)', () => {
    expect(codec.encode(v1Value).equals(v1Bytes)).toBe(true)
  })

  it.each([
    ['a metric of the wrong type', { metrics: { t: { nested: 1 } } }, /metrics/],
    ['a missing deviceId', { deviceId: undefined }, /deviceId/],
    ['an unknown source', { source: 'carrier-pigeon' }, /source/],
    ['a non-integer timestamp', { ts: 1.5 }, /ts/],
  ])('refuses to encode %s, naming the field', (_name, patch, field) => {
    const bad = { ...v1Value, ...patch } as unknown as Telemetry
    expect(() => codec.encode(bad)).toThrow(EnvelopeError)
    expect(() => codec.encode(bad)).toThrow(field)
  })

  it('encodes values larger than its scratch buffer, and each record owns its bytes', async () => {
    const big = { ...v1Value, meta: { blob: 'x'.repeat(200_000) } }
    const framed = codec.encode(big)
    expect(framed.readInt32BE(1)).toBe(1)
    expect(await codec.decode(framed)).toEqual(big)
    // Later encodes (into the same scratch space) leave earlier records untouched.
    const small = codec.encode(v1Value)
    const again = codec.encode({ ...v1Value, deviceId: 'other-device' })
    expect(small.equals(v1Bytes)).toBe(true)
    expect(await codec.decode(framed)).toEqual(big)
    expect((await codec.decode(again)).deviceId).toBe('other-device')
  })

  it('encodes again after refusing a value half-way', () => {
    expect(() => codec.encode({ ...v1Value, ts: 1.5 })).toThrow(EnvelopeError)
    expect(codec.encode(v1Value).equals(v1Bytes)).toBe(true)
  })

  it('rejects an unknown schema id with a SchemaError', async () => {
    await expect(codec.decode(encodeWire(999, Buffer.from([0])))).rejects.toBeInstanceOf(SchemaError)
  })

  it('rejects truncated and trailing-garbage payloads with an EnvelopeError', async () => {
    await expect(codec.decode(v1Bytes.subarray(0, v1Bytes.length - 3))).rejects.toBeInstanceOf(EnvelopeError)
    await expect(codec.decode(Buffer.concat([v1Bytes, Buffer.from([1, 2, 3])]))).rejects.toBeInstanceOf(
      EnvelopeError,
    )
  })
})

describe('core > envelope > local registry', () => {
  const base = JSON.parse(readFileSync(path.resolve(__dirname, '../../schemas/telemetry.avsc'), 'utf8'))

  it('finds the bundled id for the same schema, ignoring docs', async () => {
    const reg = new LocalSchemaRegistry()
    const noDocs = JSON.parse(JSON.stringify(base, (k, v) => (k === 'doc' ? undefined : v)))
    expect(await reg.register(TELEMETRY_SUBJECT, noDocs)).toBe(1)
  })

  it('gives a compatible new version a new id, and data written with v2 reads as v1 and back', async () => {
    const reg = new LocalSchemaRegistry()
    const v2 = {
      ...base,
      fields: [...base.fields, { name: 'site', type: ['null', 'string'], default: null }],
    }
    const id2 = await reg.register(TELEMETRY_SUBJECT, v2)
    // Run-time registrations get ids after every bundled one.
    const bundled = JSON.parse(
      readFileSync(path.resolve(__dirname, '../../schemas/registry.json'), 'utf8'),
    ) as { schemas: { id: number }[] }
    expect(id2).toBe(Math.max(...bundled.schemas.map((x) => x.id)) + 1)
    const c2 = await AvroCodec.create<Telemetry & { site: string | null }>(reg, TELEMETRY_SUBJECT, v2)
    const c1 = await AvroCodec.create<Telemetry>(reg, TELEMETRY_SUBJECT, base)
    // old reader, new data
    expect(await c1.decode(c2.encode({ ...v1Value, site: 'plant-3' }))).toEqual(v1Value)
    // new reader, old data: the new field takes its default
    expect(await c2.decode(c1.encode(v1Value))).toEqual({ ...v1Value, site: null })
  })

  it('a projection reads only its fields, of records written with this schema or a newer one', async () => {
    const reg = new LocalSchemaRegistry()
    const c1 = await AvroCodec.create<Telemetry>(reg, TELEMETRY_SUBJECT, base)
    const v2 = {
      ...base,
      fields: [...base.fields, { name: 'site', type: ['null', 'string'], default: null }],
    }
    const c2 = await AvroCodec.create<Telemetry & { site: string | null }>(reg, TELEMETRY_SUBJECT, v2)
    const p = c1.projection(['deviceId', 'ts', 'metrics'])
    const want = { deviceId: v1Value.deviceId, ts: v1Value.ts, metrics: v1Value.metrics }
    expect(await p.decode(c1.encode(v1Value))).toEqual(want)
    expect(await p.decode(v1Bytes)).toEqual(want)
    expect(await p.decode(c2.encode({ ...v1Value, site: 'plant-3' }))).toEqual(want)
    // The same refusals as the whole codec's.
    await expect(p.decode(v1Bytes.subarray(0, v1Bytes.length - 3))).rejects.toBeInstanceOf(EnvelopeError)
    await expect(p.decode(encodeWire(999, Buffer.from([0])))).rejects.toBeInstanceOf(SchemaError)
    expect(() => c1.projection(['deviceId', 'site' as keyof Telemetry])).toThrow(/has no field site/)
  })

  it('refuses an incompatible new version', async () => {
    const reg = new LocalSchemaRegistry()
    const broken = { ...base, fields: [...base.fields, { name: 'site', type: 'string' }] }
    await expect(reg.register(TELEMETRY_SUBJECT, broken)).rejects.toThrow(/not backward compatible/)
  })
})
