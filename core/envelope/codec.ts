import avro from 'avsc'
import { EnvelopeError, SchemaError } from '../errors'
import { loadBundledSchema, type SchemaRegistry } from './registry'
import { decodeWire, WIRE_HEADER_LENGTH, writeWireHeader } from './wire'

type Resolver = ReturnType<avro.Type['createResolver']>

/** Where `AvroCodec.encode` writes before copying out (one thread, synchronous: safe to share). */
let scratch = Buffer.allocUnsafe(64 * 1024)

/** Describes why `value` does not fit `type`: the paths of the bad fields. */
function invalidPaths(type: avro.Type, value: unknown): string {
  const bad: string[] = []
  type.isValid(value, {
    errorHook: (p: string[], v: unknown, t: avro.Type) => {
      bad.push(`${p.join('.') || '(root)'}: ${JSON.stringify(v)?.slice(0, 60)} is not ${t.typeName}`)
    },
  })
  return bad.join('; ') || 'value does not match the schema'
}

/**
 * Encodes and decodes one record type in the Confluent wire format. Encoding is synchronous
 * (the hot path); decoding resolves the writer's schema by id once and caches a resolver, so
 * records written with an older compatible schema read as the current type.
 */
export class AvroCodec<T> implements Decoder<T> {
  private readonly reader: AvroReader<T>

  private constructor(
    readonly type: avro.Type,
    readonly schemaId: number,
    private readonly registry: SchemaRegistry,
  ) {
    this.reader = new AvroReader<T>(type, registry, new Map([[schemaId, type]]))
  }

  /** Registers `schema` under `subject` (or finds its id) and returns a codec for it. */
  /** A codec for one of the schemas fleetstream ships (`schemas/<file>`), registered under
   * its full name (`dev.fleetstream.Device`). */
  static async bundled<T>(registry: SchemaRegistry, file: string): Promise<AvroCodec<T>> {
    const schema = loadBundledSchema(file) as { namespace?: string; name: string }
    return AvroCodec.create<T>(registry, `${schema.namespace}.${schema.name}`, schema as avro.Schema)
  }

  static async create<T>(
    registry: SchemaRegistry,
    subject: string,
    schema: avro.Schema,
  ): Promise<AvroCodec<T>> {
    const type = avro.Type.forSchema(schema)
    const id = await registry.register(subject, schema)
    return new AvroCodec<T>(type, id, registry)
  }

  /**
   * Avro-encodes `value` behind the 5-byte wire header; throws EnvelopeError naming bad fields.
   * Encodes into a scratch buffer shared by all codecs (grown when a value does not fit), then
   * copies the record into one `Buffer.allocUnsafe` (Node's pooled slabs for small sizes):
   * avsc's `toBuffer` allocates a fresh zero-filled ArrayBuffer per value, which was ~1 s of
   * `fleetstream up`'s main thread per 100,000 readings, and the wire header needed a second copy.
   */
  encode(value: T): Buffer {
    let end: number
    try {
      end = this.type.encode(value, scratch, WIRE_HEADER_LENGTH)
      if (end < 0) {
        // Too small: avsc returns minus the missing bytes.
        scratch = Buffer.allocUnsafe(Math.max(scratch.length * 2, scratch.length - end))
        end = this.type.encode(value, scratch, WIRE_HEADER_LENGTH)
      }
    } catch (err) {
      throw new EnvelopeError(
        `cannot encode ${this.type.name ?? 'value'}: ${invalidPaths(this.type, value)}`,
        err,
      )
    }
    const out = Buffer.allocUnsafe(end)
    scratch.copy(out, 0, 0, end)
    writeWireHeader(out, this.schemaId)
    return out
  }

  /** Decodes a framed value, resolving the writer schema by its id. */
  decode(value: Buffer): Promise<T> {
    return this.reader.decode(value)
  }

  /**
   * A decoder of only `fields` of this codec's records: the others are skipped, not built (no
   * string, no map). Half the cost of a whole telemetry envelope for the rollup job, which reads
   * three of its eight fields. Reads whatever this codec reads (the writer schema by its id).
   */
  projection<K extends keyof T & string>(fields: readonly K[]): Decoder<Pick<T, K>> {
    const schema = this.type.schema() as { fields: { name: string }[] }
    const missing = fields.filter((f) => !schema.fields.some((x) => x.name === f))
    if (missing.length) throw new SchemaError(`${this.type.name} has no field ${missing.join(', ')}`)
    const type = avro.Type.forSchema({
      ...schema,
      fields: schema.fields.filter((f) => (fields as readonly string[]).includes(f.name)),
    } as avro.Schema)
    return new AvroReader<Pick<T, K>>(type, this.registry, new Map([[this.schemaId, this.type]]))
  }
}

/** Reads framed values into `T`. */
export interface Decoder<T> {
  decode(value: Buffer): Promise<T>
}

/**
 * Decodes framed values as `type`: the writer schema is looked up by its id (in `writers`, else
 * the registry) once, and a resolver from it to `type` kept, so records written with an older
 * compatible schema, or with more fields than `type` has, read as `type`.
 */
class AvroReader<T> implements Decoder<T> {
  private readonly resolvers = new Map<number, avro.Type | Resolver>()

  constructor(
    private readonly type: avro.Type,
    private readonly registry: SchemaRegistry,
    private readonly writers: Map<number, avro.Type>,
  ) {}

  async decode(value: Buffer): Promise<T> {
    const { schemaId, payload } = decodeWire(value)
    let reader = this.resolvers.get(schemaId)
    if (!reader) {
      const writer =
        this.writers.get(schemaId) ?? avro.Type.forSchema(await this.registry.schemaById(schemaId))
      try {
        reader = writer === this.type ? writer : this.type.createResolver(writer)
      } catch (err) {
        throw new SchemaError(
          `schema id ${schemaId} cannot be read as ${this.type.name}: ${(err as Error).message}`,
          { cause: err },
        )
      }
      this.resolvers.set(schemaId, reader)
    }
    try {
      return this.type.fromBuffer(payload, reader === this.type ? undefined : (reader as Resolver)) as T
    } catch (err) {
      throw new EnvelopeError(
        `cannot decode Avro payload (schema id ${schemaId}): ${(err as Error).message}`,
        err,
      )
    }
  }
}
