import { readFileSync } from 'node:fs'
import path from 'node:path'
import type avro from 'avsc'
import { backwardProblems, forwardProblems, fullProblems } from './compat'

type Rec = { type: 'record'; name: string; fields: { name: string; type: unknown; default?: unknown }[] }
const base = JSON.parse(readFileSync(path.resolve(__dirname, '../../schemas/telemetry.avsc'), 'utf8')) as Rec
const withFields = (fields: Rec['fields']): avro.Schema => ({ ...base, fields }) as avro.Schema
const without = (name: string) => base.fields.filter((f) => f.name !== name)
const replace = (name: string, type: unknown, extra: object = {}) =>
  base.fields.map((f) => (f.name === name ? { name, type, ...extra } : f))

// Table: a change to the envelope, and whether it is backward / forward compatible.
const cases: { change: string; next: avro.Schema; backward: boolean; forward: boolean }[] = [
  { change: 'no change', next: base as avro.Schema, backward: true, forward: true },
  {
    change: 'add optional field with default',
    next: withFields([...base.fields, { name: 'site', type: ['null', 'string'], default: null }]),
    backward: true,
    forward: true,
  },
  {
    change: 'add required field without default',
    next: withFields([...base.fields, { name: 'site', type: 'string' }]),
    backward: false,
    forward: true,
  },
  {
    change: 'remove field that has a default',
    next: withFields(without('tenant')),
    backward: true,
    forward: true,
  },
  { change: 'remove required field', next: withFields(without('deviceId')), backward: true, forward: false },
  {
    change: 'widen long to double',
    next: withFields(replace('ts', 'double')),
    backward: true,
    forward: false,
  },
  {
    change: 'change string to int',
    next: withFields(replace('deviceId', 'int')),
    backward: false,
    forward: false,
  },
  {
    change: 'add enum symbol',
    next: withFields(
      replace('source', { type: 'enum', name: 'Source', symbols: ['mqtt', 'http', 'bridge', 'lora'] }),
    ),
    backward: true,
    forward: false,
  },
  {
    change: 'remove enum symbol',
    next: withFields(replace('source', { type: 'enum', name: 'Source', symbols: ['mqtt', 'http'] })),
    backward: false,
    forward: true,
  },
]

describe('core > envelope > schema compatibility', () => {
  it.each(cases)('$change: backward=$backward forward=$forward', ({ next, backward, forward }) => {
    expect(backwardProblems(next, base as avro.Schema).length === 0).toBe(backward)
    expect(forwardProblems(next, base as avro.Schema).length === 0).toBe(forward)
    expect(fullProblems(next, base as avro.Schema).length === 0).toBe(backward && forward)
  })

  it('reports an invalid schema as a problem instead of throwing', () => {
    expect(
      backwardProblems(
        { type: 'record', name: 'X', fields: [{ name: 'a', type: 'nope' }] } as avro.Schema,
        base as avro.Schema,
      )[0],
    ).toMatch(/invalid schema/)
  })
})
