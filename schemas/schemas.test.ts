import { readFileSync, readdirSync } from 'node:fs'
import path from 'node:path'
import avro from 'avsc'
import { AvroCodec } from '../core/envelope/codec'
import { LocalSchemaRegistry, loadBundledSchema } from '../core/envelope/registry'
import { generate } from '../scripts/gen-schema-types'

describe('schemas', () => {
  const files = readdirSync(__dirname).filter((f) => f.endsWith('.avsc'))

  it.each(files)('%s is a valid Avro schema with one record named after the file', (file) => {
    const schema = JSON.parse(readFileSync(path.join(__dirname, file), 'utf8'))
    const type = avro.Type.forSchema(schema)
    expect(type.typeName).toBe('record')
    expect(type.name!.split('.').pop()!.toLowerCase()).toBe(file.replace(/\.avsc$/, '').replace(/-/g, ''))
  })

  it('types.generated.ts is up to date with the .avsc files', () => {
    expect(readFileSync(path.join(__dirname, 'types.generated.ts'), 'utf8')).toBe(generate())
  })

  it('every bundled schema is in the registry manifest with a unique id', () => {
    const manifest = JSON.parse(readFileSync(path.join(__dirname, 'registry.json'), 'utf8')) as {
      schemas: { id: number; file: string }[]
    }
    expect(new Set(manifest.schemas.map((s) => s.id)).size).toBe(manifest.schemas.length)
    for (const f of files) expect(manifest.schemas.some((s) => s.file === f)).toBe(true)
  })
})

describe('schemas > fixtures', () => {
  const fixtures = path.join(__dirname, '__fixtures__')
  const manifest = JSON.parse(readFileSync(path.join(__dirname, 'registry.json'), 'utf8')) as {
    schemas: { id: number; subject: string; file: string }[]
  }
  const pairs = readdirSync(fixtures)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.replace(/\.json$/, ''))

  it.each(pairs)(
    '%s: the committed bytes decode to the committed value, and encode back to the same bytes',
    async (name) => {
      const [schemaName] = name.split('.')
      const entry = manifest.schemas.find((s) => s.file === `${schemaName}.avsc`)!
      const codec = await AvroCodec.create(
        new LocalSchemaRegistry(),
        entry.subject,
        loadBundledSchema(entry.file),
      )
      const bytes = Buffer.from(readFileSync(path.join(fixtures, `${name}.hex`), 'utf8').trim(), 'hex')
      const value = JSON.parse(readFileSync(path.join(fixtures, `${name}.json`), 'utf8'))
      expect(bytes.readInt32BE(1)).toBe(entry.id)
      expect(await codec.decode(bytes)).toEqual(value)
      expect(codec.encode(value).equals(bytes)).toBe(true)
    },
  )
})
