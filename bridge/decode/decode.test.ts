import { pack } from 'msgpackr'
import { LocalSchemaRegistry } from '../../core/envelope/registry'
import { createTelemetryCodec } from '../../core/envelope/telemetry'
import { encodeWire } from '../../core/envelope/wire'
import { RejectError } from '../errors'
import { decodeAvro, decodeSync, formatFromContentType, sniffFormat } from './formats'
import { readPayload, type ShapeOptions } from './readings'
import { parseEventTime } from './timestamp'

const NOW = Date.UTC(2026, 10, 26, 12, 0, 0)
const opts: ShapeOptions = {
  deviceId: 'd1',
  receivedAt: NOW,
  maxFutureSkewMs: 60_000,
  maxMetrics: 8,
  maxReadings: 5,
  maxStringBytes: 32,
}
const codeOf = (fn: () => unknown): string => {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(RejectError)
    return (err as RejectError).code
  }
  throw new Error('expected a RejectError')
}

describe('bridge > decode > timestamps', () => {
  it.each([
    ['ms number', NOW - 5000, NOW - 5000],
    ['seconds number', (NOW - 5000) / 1000, NOW - 5000],
    ['fractional seconds', (NOW - 5500) / 1000, NOW - 5500],
    ['ms string', String(NOW - 1), NOW - 1],
    ['ISO 8601 Z', '2026-11-26T11:59:00Z', NOW - 60_000],
    ['ISO 8601 offset', '2026-11-26T12:59:00.500+01:00', NOW - 59_500],
  ])('reads %s', (_n, value, expected) => {
    expect(parseEventTime(value, NOW, 60_000)).toEqual({ ts: expected, missing: false })
  })

  it('takes the receive time for a missing timestamp, flagged', () => {
    expect(parseEventTime(undefined, NOW, 60_000)).toEqual({ ts: NOW, missing: true })
  })

  it.each([
    ['future beyond skew', NOW + 61_000, /in the future/],
    ['before 2000', 12345, /before 2000/],
    ['ISO without zone', '2026-11-26T12:00:00', /not ms, s or ISO/],
    ['garbage', 'yesterday', /not ms, s or ISO/],
    ['object', { t: 1 }, /not ms, s or ISO/],
    ['NaN', Number.NaN, /not a valid time/],
  ])('rejects %s', (_n, value, msg) => {
    expect(() => parseEventTime(value, NOW, 60_000)).toThrow(msg)
  })
})

describe('bridge > decode > payload shapes', () => {
  it('reads a flat JSON reading', () => {
    const r = readPayload(
      { ts: NOW - 1000, seq: 4, temperature: 21.5, door: false, mode: 'eco', meta: { fw: 1 } },
      opts,
    )
    expect(r).toEqual({
      readings: [
        {
          ts: NOW - 1000,
          seq: 4,
          metrics: { temperature: 21.5, door: false, mode: 'eco' },
          meta: { fw: '1' },
        },
      ],
      rejects: [],
    })
  })

  it('reads the batch form, deviceinfo becoming meta', () => {
    const r = readPayload(
      {
        deviceinfo: { deviceid: 'd1', fw_ver: '2.1', batt_lvl: 88 },
        tsdata: [
          { timestamp: NOW - 2000, t: 1 },
          { timestamp: NOW - 1000, t: 2 },
        ],
      },
      opts,
    )
    expect(r.rejects).toEqual([])
    expect(r.readings.map((x) => [x.ts, x.metrics.t, x.meta])).toEqual([
      [NOW - 2000, 1, { fw_ver: '2.1', batt_lvl: '88' }],
      [NOW - 1000, 2, { fw_ver: '2.1', batt_lvl: '88' }],
    ])
  })

  it('keeps good entries of a batch and reports each bad one with its index', () => {
    const r = readPayload(
      [{ ts: NOW, t: 1 }, { ts: NOW, t: { x: 1 } }, { ts: 'soon', t: 3 }, { ts: NOW, t: 4 }, 'x'],
      opts,
    )
    expect(r.readings.map((x) => x.metrics.t)).toEqual([1, 4])
    expect(r.rejects.map((x) => [x.index, x.error.code])).toEqual([
      [1, 'FS_BRIDGE_TYPE'],
      [2, 'FS_BRIDGE_TIMESTAMP'],
      [4, 'FS_BRIDGE_TYPE'],
    ])
  })

  it('flags a missing timestamp in meta', () => {
    expect(readPayload({ t: 1 }, opts).readings[0]!.meta).toEqual({ ts_source: 'received' })
  })

  it.each([
    ['a nested object metric', { t: { a: 1 } }, 'FS_BRIDGE_TYPE'],
    ['an array metric', { t: [1] }, 'FS_BRIDGE_TYPE'],
    ['a null metric', { t: null }, 'FS_BRIDGE_TYPE'],
    ['no metrics', { ts: NOW }, 'FS_BRIDGE_EMPTY'],
    [
      'too many metrics',
      Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`m${i}`, i])),
      'FS_BRIDGE_LIMIT',
    ],
    ['a bad metric name', { 'drop table': 1 }, 'FS_BRIDGE_DECODE'],
    [
      'a __proto__ metric (no key of a plain object)',
      JSON.parse('{"__proto__": 1, "t": 2}'),
      'FS_BRIDGE_DECODE',
    ],
    ['a too long string', { s: 'x'.repeat(33) }, 'FS_BRIDGE_LIMIT'],
    ['a negative seq', { seq: -1, t: 1 }, 'FS_BRIDGE_TYPE'],
    ['a foreign device id', { deviceId: 'd2', t: 1 }, 'FS_BRIDGE_FORBIDDEN'],
    ['a foreign batch device', { deviceinfo: { deviceid: 'd2' }, tsdata: [{ t: 1 }] }, 'FS_BRIDGE_FORBIDDEN'],
    ['tsdata not a list', { deviceinfo: {}, tsdata: { t: 1 } }, 'FS_BRIDGE_TYPE'],
    ['a string payload', 'hello', 'FS_BRIDGE_TYPE'],
    ['a number payload', 42, 'FS_BRIDGE_TYPE'],
    ['Infinity', { t: Infinity }, 'FS_BRIDGE_TYPE'],
  ])('rejects %s', (_n, value, code) => {
    expect(codeOf(() => readPayload(value, opts))).toBe(code)
  })

  it.each([
    ['an empty list', []],
    ['an empty batch', { deviceinfo: { deviceid: 'd1' }, tsdata: [] }],
  ])('rejects %s as FS_BRIDGE_EMPTY', (_n, value) => {
    expect(readPayload(value, opts).rejects.map((r) => r.error.code)).toEqual(['FS_BRIDGE_EMPTY'])
  })

  it('rejects a batch over the reading limit as a whole', () => {
    const r = readPayload(
      Array.from({ length: 6 }, () => ({ t: 1 })),
      opts,
    )
    expect(r.readings).toEqual([])
    expect(r.rejects[0]!.error.code).toBe('FS_BRIDGE_LIMIT')
  })
})

describe('bridge > decode > formats', () => {
  it.each([
    ['{"a":1}', 'json'],
    [' \n[1]', 'json'],
    ['\ufeff{"a":1}', 'json'],
    ['<reading/>', 'xml'],
    ['"text"', 'json'],
  ])('sniffs %j as %s', (text, fmt) => {
    expect(sniffFormat(Buffer.from(text))).toBe(fmt)
  })

  it('sniffs MessagePack and Avro frames', () => {
    expect(sniffFormat(pack({ a: 1 }))).toBe('msgpack')
    expect(sniffFormat(encodeWire(1, Buffer.from([2])))).toBe('avro')
  })

  it.each([
    ['application/json; charset=utf-8', 'json'],
    ['application/msgpack', 'msgpack'],
    ['text/xml', 'xml'],
    ['avro/binary', 'avro'],
    ['text/plain', undefined],
  ])('maps Content-Type %s', (ct, fmt) => {
    expect(formatFromContentType(ct)).toBe(fmt)
  })

  it('decodes MessagePack to the same reading as JSON', () => {
    const value = { ts: NOW - 1, temperature: 20.25, ok: true }
    expect(readPayload(decodeSync(pack(value), 'msgpack'), opts)).toEqual(
      readPayload(decodeSync(Buffer.from(JSON.stringify(value)), 'json'), opts),
    )
  })

  it('decodes XML readings with attributes, elements and typed values', () => {
    const one = decodeSync(
      Buffer.from(
        `<?xml version="1.0"?><reading ts="${NOW - 1}" seq="3"><temperature>21.5</temperature><door>false</door><mode>eco</mode></reading>`,
      ),
      'xml',
    )
    expect(readPayload(one, opts).readings).toEqual([
      { ts: NOW - 1, seq: 3, metrics: { temperature: 21.5, door: false, mode: 'eco' }, meta: {} },
    ])
    const many = decodeSync(
      Buffer.from(
        `<readings><reading ts="${NOW - 2}"><t>1</t></reading><reading ts="${NOW - 1}"><t>2</t></reading></readings>`,
      ),
      'xml',
    )
    expect(readPayload(many, opts).readings.map((r) => r.metrics.t)).toEqual([1, 2])
  })

  it.each([
    ['truncated JSON', 'json', '{"t": 1'],
    ['JSON with trailing garbage', 'json', '{"t":1}}'],
    ['unclosed XML', 'xml', '<reading><t>1</t>'],
    ['XML with an entity bomb', 'xml', '<!DOCTYPE x [<!ENTITY a "aaaa">]><reading><t>&a;</t></reading>'],
    ['two XML roots', 'xml', '<a>1</a><b>2</b>'],
  ])('rejects %s as FS_BRIDGE_DECODE', (_n, fmt, text) => {
    expect(codeOf(() => decodeSync(Buffer.from(text), fmt as 'json' | 'xml'))).toBe('FS_BRIDGE_DECODE')
  })

  it('rejects malformed MessagePack as FS_BRIDGE_DECODE', () => {
    expect(codeOf(() => decodeSync(Buffer.from([0xdf, 0xff, 0xff, 0xff]), 'msgpack'))).toBe(
      'FS_BRIDGE_DECODE',
    )
  })

  it('decodes an Avro envelope with a registered schema into a flat reading', async () => {
    const registry = new LocalSchemaRegistry()
    const codec = await createTelemetryCodec(registry)
    const framed = codec.encode({
      deviceId: 'd1',
      tenant: null,
      ts: NOW - 10,
      receivedAt: 0,
      seq: 9,
      metrics: { t: 3.5 },
      meta: { fw: '1' },
      source: 'mqtt',
    })
    const value = await decodeAvro(framed, registry, new Map())
    expect(readPayload(value, opts).readings).toEqual([
      { ts: NOW - 10, seq: 9, metrics: { t: 3.5 }, meta: { fw: '1' } },
    ])
  })

  it('rejects Avro with an unregistered schema id, and a broken body', async () => {
    const registry = new LocalSchemaRegistry()
    await expect(decodeAvro(encodeWire(4242, Buffer.from([1])), registry, new Map())).rejects.toMatchObject({
      code: 'FS_BRIDGE_SCHEMA',
    })
    await expect(decodeAvro(encodeWire(1, Buffer.from([1, 2])), registry, new Map())).rejects.toMatchObject({
      code: 'FS_BRIDGE_DECODE',
    })
  })
})
