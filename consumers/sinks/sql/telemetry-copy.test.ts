import fc from 'fast-check'
import { LocalSchemaRegistry } from '../../../core/envelope/registry'
import { createTelemetryCodec } from '../../../core/envelope/telemetry'
import { encodeWire } from '../../../core/envelope/wire'
import type { Telemetry } from '../../../schemas/types.generated'
import { bulkParams, sqliteDialect } from './dialect'
import { binaryCopy } from './pg-binary-copy'
import { TELEMETRY, type LastSeen } from './tables'
import {
  TELEMETRY_COPY_COLUMNS,
  TELEMETRY_SCHEMA_SUPPORTED,
  telemetryCopy,
  telemetryRows,
  TranscodeError,
} from './telemetry-copy'

// The fast path must store exactly what the general path (avsc decode, then binaryCopy of the
// objects) stores: compared here byte for byte on random readings, and on the real PostgreSQL in
// consumers/sinks/postgres.int.test.ts.

const codecP = createTelemetryCodec(new LocalSchemaRegistry())

/** Keys that are not array indices (JS objects put those first, so JSON.stringify reorders them). */
const key = fc
  .string({ unit: 'binary', minLength: 1, maxLength: 12 })
  .filter((k) => !/^(0|[1-9]\d*)$/.test(k) && k !== '__proto__')
const text = fc.string({ unit: 'binary', maxLength: 16 })
const double = fc.oneof(
  fc.double(),
  fc.constantFrom(NaN, Infinity, -Infinity, -0, 5e-324, 1e21, 123456789.125),
  fc.integer(),
)
const reading: fc.Arbitrary<Telemetry> = fc.record({
  deviceId: fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }),
  tenant: fc.option(text, { nil: null }),
  // From before PostgreSQL's epoch (and the Unix one) to year 9999.
  ts: fc.integer({ min: -8_000_000_000_000, max: 253_402_300_799_999 }),
  receivedAt: fc.integer({ min: 0, max: 253_402_300_799_999 }),
  seq: fc.option(fc.oneof(fc.integer({ min: 0 }), fc.constant(9_007_199_254_740_990)), { nil: null }),
  metrics: fc.dictionary(key, fc.oneof(double, fc.boolean(), text), { maxKeys: 6 }),
  meta: fc.dictionary(key, text, { maxKeys: 3 }),
  source: fc.constantFrom('mqtt' as const, 'http' as const, 'bridge' as const),
})

/** A zigzag varint, as Avro writes a long. */
const long = (n: number): number[] => {
  let z = n >= 0 ? n * 2 : -n * 2 - 1
  const out: number[] = []
  while (z >= 0x80) {
    out.push((z % 0x80) | 0x80)
    z = Math.floor(z / 0x80)
  }
  out.push(z)
  return out
}
const str = (s: string): number[] => {
  const b = Buffer.from(s)
  return [...long(b.length), ...b]
}

/** Last-seen: each device's latest time and the tenant of its last reading. */
function expectLastSeen(got: LastSeen[], decoded: Telemetry[]): void {
  const expected = new Map<string, { ts: number; tenant: string | null }>()
  for (const r of decoded)
    expected.set(r.deviceId, {
      ts: Math.max(r.ts, expected.get(r.deviceId)?.ts ?? -Infinity),
      tenant: r.tenant,
    })
  expect(new Map(got.map((s) => [s.deviceId, { ts: s.ts, tenant: s.tenant }]))).toEqual(expected)
}

/** The tuples of a binary COPY stream, each as its fields (null for NULL). */
function tuples(b: Buffer): (Buffer | null)[][] {
  const out: (Buffer | null)[][] = []
  let at = 19 // signature, flags, header extension length
  for (let n = b.readInt16BE(at); n !== -1; n = b.readInt16BE(at)) {
    at += 2
    const fields: (Buffer | null)[] = []
    for (let i = 0; i < n; i++) {
      const len = b.readInt32BE(at)
      at += 4
      fields.push(len < 0 ? null : b.subarray(at, at + len))
      at += Math.max(0, len)
    }
    out.push(fields)
  }
  return out
}

describe('consumers > sinks > telemetry Avro straight into COPY', () => {
  it('reads the bundled telemetry schema (a schema change must update it, or the fast path turns off)', () => {
    expect(TELEMETRY_SCHEMA_SUPPORTED).toBe(true)
    expect(TELEMETRY_COPY_COLUMNS).toEqual(TELEMETRY.columns.map((c) => c.name))
  })

  it('writes the same bytes as decoding with avsc and copying the objects', async () => {
    const codec = await codecP
    await fc.assert(
      fc.asyncProperty(fc.array(reading, { minLength: 1, maxLength: 8 }), async (rs) => {
        const values = rs.map((r) => codec.encode(r))
        const decoded = await Promise.all(values.map((v) => codec.decode(v)))
        const fast = telemetryCopy(values)
        expect(fast.copy.equals(binaryCopy(TELEMETRY, decoded))).toBe(true)
        expectLastSeen(fast.lastSeen, decoded)
      }),
      { numRuns: 400 },
    )
  })

  it('gives array-index keys the same JSON members as the objects do', async () => {
    const codec = await codecP
    const r: Telemetry = {
      deviceId: 'd',
      tenant: null,
      ts: 1,
      receivedAt: 2,
      seq: 3,
      metrics: { b: 1, '2': 2, '10': true },
      meta: { '0': 'x' },
      source: 'http',
    }
    const [fields] = tuples(telemetryCopy([codec.encode(r)]).copy)
    const jsonb = (f: Buffer | null) => (expect(f![0]).toBe(1), f!.subarray(1).toString())
    expect(JSON.parse(jsonb(fields![6]!))).toEqual(r.metrics)
    expect(jsonb(fields![7]!)).toBe('{"0":"x"}')
  })

  it('reads maps written in blocks with byte sizes (as Java writers may), like avsc does', async () => {
    const codec = await codecP
    const body = [
      ...str('dev-1'),
      0, // tenant: null
      ...long(1_790_000_000_000),
      ...long(1_790_000_000_002),
      2,
      ...long(7), // seq: branch 1, 7
      // metrics: a block of -2 items with its byte size, then a block of 1, then the end
      ...long(-2),
      ...long(18),
      ...str('a'),
      ...long(0),
      ...[0, 0, 0, 0, 0, 0, 0xf8, 0x3f], // a: 1.5 (double, little-endian)
      ...str('b'),
      ...long(2),
      ...str('x"y'),
      ...long(1),
      ...str('c'),
      ...long(1),
      1, // c: true
      0,
      0, // meta: empty
      ...long(2), // source: bridge
    ]
    const value = encodeWire(codec.schemaId, Buffer.from(body))
    const decoded = await codec.decode(value)
    expect(decoded.metrics).toEqual({ a: 1.5, b: 'x"y', c: true })
    expect(telemetryCopy([value]).copy.equals(binaryCopy(TELEMETRY, [decoded]))).toBe(true)
  })

  it('refuses what avsc refuses (every truncation, trailing bytes, bad branches, unsafe longs) and what the sinks refuse', async () => {
    const codec = await codecP
    const good = codec.encode({
      deviceId: 'dev-ü',
      tenant: 'acme',
      ts: 1_790_000_000_000,
      receivedAt: 1_790_000_000_001,
      seq: 42,
      metrics: { t: 21.5, s: 'on', ok: false },
      meta: { fw: '1.2' },
      source: 'mqtt',
    })
    for (let n = 5; n < good.length; n++) {
      const cut = good.subarray(0, n)
      await expect(codec.decode(cut)).rejects.toThrow()
      expect(() => telemetryCopy([cut])).toThrow()
    }
    const bad = [
      Buffer.concat([good, Buffer.from([0])]), // trailing byte
      Buffer.from([...good.subarray(0, 5), ...str('d'), 4]), // tenant branch 2
      Buffer.from([...good.subarray(0, good.length - 1), ...long(3)]), // source index 3
      // seq of 2^53 − 1 and of −2^53 (varints avsc refuses as unsafe)
      encodeWire(codec.schemaId, Buffer.from([...str('d'), 0, 2, 2, 2, ...long(2 ** 53 - 1), 0, 0, 0])),
      encodeWire(
        codec.schemaId,
        Buffer.from([...str('d'), 0, 2, 2, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0]),
      ),
    ]
    for (const b of bad) {
      await expect(codec.decode(b)).rejects.toThrow()
      expect(() => telemetryCopy([b])).toThrow()
    }
    // avsc reads an empty device id; the sinks refuse it (sql-sink.ts), so the general path must see it.
    expect(() =>
      telemetryCopy([encodeWire(codec.schemaId, Buffer.from([...str(''), 0, 2, 2, 0, 0, 0, 0]))]),
    ).toThrow(/empty device id/)
    // avsc reads a map into a plain object, where a `__proto__` key is lost: the general path decides.
    const withProto = codec.encode({ ...(await codec.decode(good)), metrics: JSON.parse('{"__proto__":1}') })
    expect((await codec.decode(withProto)).metrics).toEqual({})
    expect(() => telemetryCopy([withProto])).toThrow(/__proto__/)
  })
})

describe('consumers > sinks > telemetry Avro straight into SQLite rows', () => {
  it('makes the rows the general path binds (avsc decode, then the dialect), JSON text included', async () => {
    const codec = await codecP
    let taken = 0
    await fc.assert(
      fc.asyncProperty(fc.array(reading, { minLength: 1, maxLength: 8 }), async (rs) => {
        const values = rs.map((r) => codec.encode(r))
        const decoded = await Promise.all(values.map((v) => codec.decode(v)))
        // A key JavaScript may order first, or that starts like an index: the general path decides.
        const digitKey = decoded.some((r) =>
          [...Object.keys(r.metrics), ...Object.keys(r.meta)].some((k) => /^[0-9]/.test(k)),
        )
        if (digitKey) {
          expect(() => telemetryRows(values)).toThrow(TranscodeError)
          return
        }
        taken++
        const fast = telemetryRows(values)
        expect(fast.rows).toEqual(bulkParams(sqliteDialect, TELEMETRY, decoded))
        expectLastSeen(fast.lastSeen, decoded)
      }),
      { numRuns: 400 },
    )
    expect(taken).toBeGreaterThan(200)
  })

  it('leaves to the general path a map with a key twice (the object keeps the last value) or one that starts with a digit', async () => {
    const codec = await codecP
    const twice = encodeWire(
      codec.schemaId,
      Buffer.from([...str('d'), 0, 2, 2, 0, ...long(2), ...str('a'), 2, 1, ...str('a'), 2, 0, 0, 0, 0]),
    )
    expect((await codec.decode(twice)).metrics).toEqual({ a: false })
    expect(() => telemetryRows([twice])).toThrow(/twice/)
    const digit = codec.encode({
      deviceId: 'd',
      tenant: null,
      ts: 1,
      receivedAt: 2,
      seq: null,
      metrics: { t: 1 },
      meta: { '2': 'x' },
      source: 'mqtt',
    })
    expect(() => telemetryRows([digit])).toThrow(/digit/)
    expect(() => telemetryRows([digit.subarray(0, digit.length - 1)])).toThrow()
  })
})
