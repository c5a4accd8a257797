import { readFileSync } from 'node:fs'
import path from 'node:path'
import { assetPath } from '../paths'
import avro from 'avsc'
import { SchemaError } from '../errors'
import { backwardProblems } from './compat'

/** Resolves schema ids both ways, as a Confluent Schema Registry does. */
export interface SchemaRegistry {
  /** The id of `schema` under `subject`, registering it if new (backward compatibility enforced). */
  register(subject: string, schema: avro.Schema): Promise<number>
  /** The writer schema of `id`. */
  schemaById(id: number): Promise<avro.Schema>
}

/** Folder of the bundled `.avsc` files and their manifest. */
export const SCHEMAS_DIR = assetPath('schemas')

interface ManifestEntry {
  id: number
  subject: string
  file: string
  version: number
}

/** Reads one bundled schema by file name (e.g. `telemetry.avsc`). */
export function loadBundledSchema(file: string): avro.Schema {
  return JSON.parse(readFileSync(path.join(SCHEMAS_DIR, file), 'utf8')) as avro.Schema
}

/** avsc's canonical schema (docs and extra attributes dropped): equal schemas compare equal. */
function canonical(schema: avro.Schema): string {
  return JSON.stringify(avro.Type.forSchema(schema).schema())
}

/**
 * The bundled local registry (the default): fixed ids for the schemas fleetstream ships, read
 * from `schemas/registry.json`, so every process agrees on ids without a registry server.
 * Schemas registered at run time get ids above the bundled ones, in this process only.
 */
export class LocalSchemaRegistry implements SchemaRegistry {
  private readonly byId = new Map<number, { subject: string; schema: avro.Schema; canon: string }>()

  constructor(manifestFile = path.join(SCHEMAS_DIR, 'registry.json')) {
    const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as { schemas: ManifestEntry[] }
    for (const e of manifest.schemas) {
      const schema = JSON.parse(
        readFileSync(path.join(path.dirname(manifestFile), e.file), 'utf8'),
      ) as avro.Schema
      if (this.byId.has(e.id)) throw new SchemaError(`schema id ${e.id} appears twice in ${manifestFile}`)
      this.byId.set(e.id, { subject: e.subject, schema, canon: canonical(schema) })
    }
  }

  async register(subject: string, schema: avro.Schema): Promise<number> {
    const canon = canonical(schema)
    let latest: { id: number; schema: avro.Schema } | undefined
    for (const [id, e] of this.byId) {
      if (e.subject !== subject) continue
      if (e.canon === canon) return id
      if (!latest || id > latest.id) latest = { id, schema: e.schema }
    }
    if (latest) {
      const problems = backwardProblems(schema, latest.schema)
      if (problems.length > 0) {
        throw new SchemaError(
          `schema for ${subject} is not backward compatible with id ${latest.id}: ${problems.join('; ')}`,
        )
      }
    }
    const id = Math.max(0, ...this.byId.keys()) + 1
    this.byId.set(id, { subject, schema, canon })
    return id
  }

  async schemaById(id: number): Promise<avro.Schema> {
    const e = this.byId.get(id)
    if (!e) throw new SchemaError(`unknown schema id ${id} (local registry)`)
    return e.schema
  }
}

/** Options of the Confluent Schema Registry client. */
export interface ConfluentRegistryOptions {
  url: string
  username?: string
  password?: string
  fetchImpl?: typeof fetch
}

/** A client of a Confluent Schema Registry (REST API v1), with ids cached after first use. */
export class ConfluentSchemaRegistry implements SchemaRegistry {
  private readonly ids = new Map<string, number>()
  private readonly schemas = new Map<number, avro.Schema>()
  private readonly base: string
  private readonly headers: Record<string, string>
  private readonly fetchImpl: typeof fetch

  constructor(opts: ConfluentRegistryOptions) {
    this.base = opts.url.replace(/\/+$/, '')
    this.headers = {
      'Content-Type': 'application/vnd.schemaregistry.v1+json',
      Accept: 'application/vnd.schemaregistry.v1+json',
    }
    if (opts.username !== undefined) {
      this.headers.Authorization = `Basic ${Buffer.from(`${opts.username}:${opts.password ?? ''}`).toString('base64')}`
    }
    this.fetchImpl = opts.fetchImpl ?? fetch
  }

  private async call<T>(method: string, urlPath: string, body?: unknown): Promise<T> {
    let res: Response
    try {
      res = await this.fetchImpl(`${this.base}${urlPath}`, {
        method,
        headers: this.headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      })
    } catch (err) {
      throw new SchemaError(`schema registry unreachable at ${this.base}`, { retriable: true, cause: err })
    }
    const text = await res.text()
    if (!res.ok) {
      throw new SchemaError(
        `schema registry ${method} ${urlPath} answered ${res.status}: ${text.slice(0, 300)}`,
        {
          retriable: res.status >= 500,
        },
      )
    }
    return JSON.parse(text) as T
  }

  async register(subject: string, schema: avro.Schema): Promise<number> {
    const schemaText = JSON.stringify(schema)
    const key = `${subject}\u0000${schemaText}`
    const hit = this.ids.get(key)
    if (hit !== undefined) return hit
    const { id } = await this.call<{ id: number }>(
      'POST',
      `/subjects/${encodeURIComponent(subject)}/versions`,
      { schema: schemaText },
    )
    this.ids.set(key, id)
    this.schemas.set(id, schema)
    return id
  }

  async schemaById(id: number): Promise<avro.Schema> {
    const hit = this.schemas.get(id)
    if (hit) return hit
    const { schema } = await this.call<{ schema: string }>('GET', `/schemas/ids/${id}`)
    const parsed = JSON.parse(schema) as avro.Schema
    this.schemas.set(id, parsed)
    return parsed
  }

  /** Asks the registry whether `schema` may become the next version of `subject`. */
  async isCompatible(subject: string, schema: avro.Schema): Promise<boolean> {
    const r = await this.call<{ is_compatible: boolean }>(
      'POST',
      `/compatibility/subjects/${encodeURIComponent(subject)}/versions/latest`,
      { schema: JSON.stringify(schema) },
    )
    return r.is_compatible
  }
}
