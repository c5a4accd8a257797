import avro from 'avsc'
import { XMLParser, XMLValidator } from 'fast-xml-parser'
import { unpack } from 'msgpackr'
import type { SchemaRegistry } from '../../core/envelope/registry'
import { decodeWire } from '../../core/envelope/wire'
import { RejectError } from '../errors'

/** Payload formats the bridge decodes. `auto` looks at the first byte. */
export type PayloadFormat = 'json' | 'msgpack' | 'xml' | 'avro'

/**
 * Guesses the format from the first byte: `{`/`[`/`"`/whitespace → JSON, `<` → XML, 0x00 (the
 * Confluent wire format's magic byte) → Avro, anything else → MessagePack.
 */
export function sniffFormat(payload: Buffer): PayloadFormat {
  let i = 0
  if (payload[0] === 0xef && payload[1] === 0xbb && payload[2] === 0xbf) i = 3 // UTF-8 BOM
  while (
    i < payload.length &&
    (payload[i] === 0x20 || payload[i] === 0x09 || payload[i] === 0x0a || payload[i] === 0x0d)
  )
    i++
  const b = payload[i]
  if (b === 0x7b || b === 0x5b || b === 0x22) return 'json'
  if (b === 0x3c) return 'xml'
  if (payload[0] === 0x00) return 'avro'
  return 'msgpack'
}

/** The format named by an HTTP Content-Type, or undefined to sniff. */
export function formatFromContentType(contentType: string | undefined): PayloadFormat | undefined {
  const ct = (contentType ?? '').split(';')[0]!.trim().toLowerCase()
  if (ct === 'application/json' || ct.endsWith('+json')) return 'json'
  if (ct === 'application/msgpack' || ct === 'application/x-msgpack' || ct === 'application/vnd.msgpack')
    return 'msgpack'
  if (ct === 'application/xml' || ct === 'text/xml' || ct.endsWith('+xml')) return 'xml'
  if (ct === 'application/avro' || ct === 'application/vnd.kafka.avro.v2+json' || ct === 'avro/binary')
    return 'avro'
  return undefined
}

function decodeJson(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString('utf8'))
  } catch (err) {
    throw new RejectError('FS_BRIDGE_DECODE', `malformed JSON: ${(err as Error).message}`, undefined, err)
  }
}

function decodeMsgpack(payload: Buffer): unknown {
  try {
    return unpack(payload)
  } catch (err) {
    throw new RejectError(
      'FS_BRIDGE_DECODE',
      `malformed MessagePack: ${(err as Error).message}`,
      undefined,
      err,
    )
  }
}

/** XML values are text: numbers and booleans are recognised, the rest stays a string. */
function xmlScalar(text: string): number | boolean | string {
  if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(text)) return Number(text)
  if (text === 'true' || text === 'false') return text === 'true'
  return text
}

function coerceXml(node: unknown, depth: number): unknown {
  if (depth > 8) throw new RejectError('FS_BRIDGE_DECODE', 'XML nested deeper than 8 levels')
  if (typeof node === 'string') return xmlScalar(node)
  if (Array.isArray(node)) return node.map((n) => coerceXml(n, depth + 1))
  if (node && typeof node === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(node)) out[k] = k === 'meta' ? v : coerceXml(v, depth + 1)
    return out
  }
  return node
}

const xmlParser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '',
  parseTagValue: false,
  parseAttributeValue: false,
  // No entity expansion: no billion-laughs, no external entities.
  processEntities: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
})

/**
 * XML: `<reading ts="…" seq="…"><temperature>21.5</temperature></reading>`, or several
 * `<reading>` inside one root element. Attributes and child elements become fields.
 */
function decodeXml(payload: Buffer): unknown {
  const text = payload.toString('utf8')
  if (/<!DOCTYPE|<!ENTITY/i.test(text))
    throw new RejectError('FS_BRIDGE_DECODE', 'XML with a DOCTYPE or ENTITY declaration is refused')
  const valid = XMLValidator.validate(text)
  if (valid !== true)
    throw new RejectError('FS_BRIDGE_DECODE', `malformed XML: ${valid.err.msg} (line ${valid.err.line})`)
  const doc = xmlParser.parse(text) as Record<string, unknown>
  const roots = Object.keys(doc)
  if (roots.length !== 1) throw new RejectError('FS_BRIDGE_DECODE', 'XML must have exactly one root element')
  const root = doc[roots[0]!]
  if (root && typeof root === 'object' && !Array.isArray(root) && 'reading' in root) {
    const r = (root as Record<string, unknown>).reading
    return coerceXml(Array.isArray(r) ? r : [r], 0)
  }
  return coerceXml(root === '' ? {} : root, 0)
}

/** Flattens a decoded Avro record: a telemetry-shaped record's `metrics` map becomes fields. */
function avroToFlat(value: unknown): unknown {
  if (!value || typeof value !== 'object') return value
  const rec = { ...(value as Record<string, unknown>) }
  if (rec.metrics && typeof rec.metrics === 'object') {
    const metrics = rec.metrics as Record<string, unknown>
    delete rec.metrics
    for (const k of ['receivedAt', 'source', 'tenant']) delete rec[k]
    return { ...rec, ...metrics }
  }
  return rec
}

/** Decodes Avro in the Confluent wire format with the writer schema from the registry. */
export async function decodeAvro(
  payload: Buffer,
  registry: SchemaRegistry,
  cache: Map<number, avro.Type>,
): Promise<unknown> {
  let schemaId: number
  let body: Buffer
  try {
    ;({ schemaId, payload: body } = decodeWire(payload))
  } catch (err) {
    throw new RejectError(
      'FS_BRIDGE_DECODE',
      `malformed Avro frame: ${(err as Error).message}`,
      undefined,
      err,
    )
  }
  let type = cache.get(schemaId)
  if (!type) {
    try {
      type = avro.Type.forSchema(await registry.schemaById(schemaId))
    } catch (err) {
      throw new RejectError(
        'FS_BRIDGE_SCHEMA',
        `Avro schema id ${schemaId} is not registered: ${(err as Error).message}`,
        undefined,
        err,
      )
    }
    cache.set(schemaId, type)
  }
  try {
    return avroToFlat(type.fromBuffer(body))
  } catch (err) {
    throw new RejectError(
      'FS_BRIDGE_DECODE',
      `malformed Avro body for schema id ${schemaId}: ${(err as Error).message}`,
      undefined,
      err,
    )
  }
}

/** Decodes a JSON, MessagePack or XML payload synchronously (Avro needs the registry: decodeAvro). */
export function decodeSync(payload: Buffer, format: Exclude<PayloadFormat, 'avro'>): unknown {
  switch (format) {
    case 'json':
      return decodeJson(payload)
    case 'msgpack':
      return decodeMsgpack(payload)
    case 'xml':
      return decodeXml(payload)
  }
}
