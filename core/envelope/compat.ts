import avro from 'avsc'

/**
 * Whether data written with `writer` can be read with `reader` (Avro schema resolution).
 * "Backward compatible" in Confluent's sense: the new schema (reader) reads old data (writer).
 * Returns the problems found; an empty list means compatible.
 */
export function readProblems(reader: avro.Schema, writer: avro.Schema): string[] {
  let readerType: avro.Type
  let writerType: avro.Type
  try {
    readerType = avro.Type.forSchema(reader)
    writerType = avro.Type.forSchema(writer)
  } catch (err) {
    return [`invalid schema: ${err instanceof Error ? err.message : String(err)}`]
  }
  try {
    readerType.createResolver(writerType)
    return []
  } catch (err) {
    return [err instanceof Error ? err.message : String(err)]
  }
}

/** The new schema can read everything written with the previous one (new fields need defaults…). */
export function backwardProblems(next: avro.Schema, previous: avro.Schema): string[] {
  return readProblems(next, previous)
}

/** The previous schema can read what the new one writes (old consumers keep working). */
export function forwardProblems(next: avro.Schema, previous: avro.Schema): string[] {
  return readProblems(previous, next)
}

/** Both directions: what fleetstream requires of a new version of a shipped schema. */
export function fullProblems(next: avro.Schema, previous: avro.Schema): string[] {
  return [
    ...backwardProblems(next, previous).map((p) => `backward: ${p}`),
    ...forwardProblems(next, previous).map((p) => `forward: ${p}`),
  ]
}
