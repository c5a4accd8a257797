import type { CoreConfig } from '../config/schema'
import type { Telemetry } from '../../schemas/types.generated'
import { AvroCodec } from './codec'
import {
  ConfluentSchemaRegistry,
  LocalSchemaRegistry,
  loadBundledSchema,
  type SchemaRegistry,
} from './registry'

export type { Telemetry, Source } from '../../schemas/types.generated'

/** Registry subject of the envelope (record-name strategy: one subject on every telemetry topic). */
export const TELEMETRY_SUBJECT = 'dev.fleetstream.Telemetry'

/** The schema registry that configuration names: bundled local (default) or Confluent. */
export function createSchemaRegistry(cfg: CoreConfig['schemaRegistry']): SchemaRegistry {
  return cfg.kind === 'confluent'
    ? new ConfluentSchemaRegistry({ url: cfg.url, username: cfg.username, password: cfg.password })
    : new LocalSchemaRegistry()
}

/** A codec for the telemetry envelope (`schemas/telemetry.avsc`) in the Confluent wire format. */
export function createTelemetryCodec(registry: SchemaRegistry): Promise<AvroCodec<Telemetry>> {
  return AvroCodec.create<Telemetry>(registry, TELEMETRY_SUBJECT, loadBundledSchema('telemetry.avsc'))
}
