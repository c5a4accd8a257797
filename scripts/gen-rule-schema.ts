/**
 * Writes rules/rule.schema.json, the JSON Schema of rule files, from the zod schema that
 * validates them (rules/schema.ts), for editors and other tools. `npx tsx
 * scripts/gen-rule-schema.ts` rewrites it; a test fails when it is out of date. Cross-field
 * checks (one of above/below, safe clear levels) live only in the zod schema.
 */
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { z } from 'zod'
import { ruleFileSchema } from '../rules/schema'

export const RULE_SCHEMA_FILE = path.resolve(__dirname, '../rules/rule.schema.json')

/** The JSON Schema text of a rule file. */
export function ruleJsonSchema(): string {
  const schema = z.toJSONSchema(ruleFileSchema, { io: 'input', unrepresentable: 'any' })
  return `${JSON.stringify({ ...schema, title: 'fleetstream rule file', $id: 'https://fleetstream.dev/rule.schema.json' }, null, 2)}\n`
}

if (require.main === module) writeFileSync(RULE_SCHEMA_FILE, ruleJsonSchema())
