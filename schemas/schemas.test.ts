import { readFileSync, readdirSync } from 'node:fs'
import path from 'node:path'
import avro from 'avsc'
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
