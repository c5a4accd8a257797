/**
 * Generates TypeScript types from the Avro schemas in schemas/ (STYLE: types come from the
 * schemas, never copied by hand). `npx tsx scripts/gen-schema-types.ts` rewrites
 * schemas/types.generated.ts; `--check` exits 1 when that file is out of date.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'

type AvroSchema = string | AvroSchema[] | { [k: string]: unknown }

const DIR = path.resolve(__dirname, '../schemas')
const OUT = path.join(DIR, 'types.generated.ts')

/** TS type expression for an Avro schema; named types are emitted once into `decls`. */
function tsType(s: AvroSchema, decls: Map<string, string>): string {
  if (typeof s === 'string') {
    switch (s) {
      case 'null':
        return 'null'
      case 'boolean':
        return 'boolean'
      case 'int':
      case 'long':
      case 'float':
      case 'double':
        return 'number'
      case 'string':
        return 'string'
      case 'bytes':
        return 'Buffer'
      default:
        return s.split('.').pop() as string
    }
  }
  if (Array.isArray(s)) return s.map((b) => tsType(b, decls)).join(' | ')
  const type = s.type as AvroSchema
  if (typeof type !== 'string') return tsType(type, decls)
  switch (type) {
    case 'record': {
      const name = s.name as string
      const fields = (s.fields as { name: string; type: AvroSchema; doc?: string }[]).map(
        (f) => `${f.doc ? `  /** ${f.doc} */\n` : ''}  ${f.name}: ${tsType(f.type, decls)}`,
      )
      decls.set(
        name,
        `${s.doc ? `/** ${String(s.doc)} */\n` : ''}export interface ${name} {\n${fields.join('\n')}\n}`,
      )
      return name
    }
    case 'enum': {
      const name = s.name as string
      decls.set(
        name,
        `/** Symbols of the Avro enum ${name}. */\nexport type ${name} = ${(s.symbols as string[]).map((x) => `'${x}'`).join(' | ')}`,
      )
      return name
    }
    case 'map':
      return `Record<string, ${tsType(s.values as AvroSchema, decls)}>`
    case 'array':
      return `Array<${tsType(s.items as AvroSchema, decls)}>`
    case 'fixed':
      return 'Buffer'
    default:
      return tsType(type, decls)
  }
}

/** The generated file's text for every `.avsc` in schemas/. */
export function generate(): string {
  const decls = new Map<string, string>()
  for (const file of readdirSync(DIR)
    .filter((f) => f.endsWith('.avsc'))
    .sort()) {
    tsType(JSON.parse(readFileSync(path.join(DIR, file), 'utf8')) as AvroSchema, decls)
  }
  const header = '// Generated from schemas/*.avsc by scripts/gen-schema-types.ts. Do not edit by hand.\n'
  return `${header}\n${[...decls.values()].join('\n\n')}\n`
}

if (require.main === module) {
  const text = generate()
  if (process.argv.includes('--check')) {
    const current = readFileSync(OUT, 'utf8')
    if (current !== text) {
      console.error('schemas/types.generated.ts is out of date: run npx tsx scripts/gen-schema-types.ts')
      process.exit(1)
    }
  } else {
    writeFileSync(OUT, text)
  }
}
