// Generated from schemas/*.avsc by scripts/gen-schema-types.ts. Do not edit by hand.

/** Symbols of the Avro enum AlertEvent. */
export type AlertEvent = 'raised' | 'updated' | 'cleared' | 'acknowledged'

/** Symbols of the Avro enum AlertSeverity. */
export type AlertSeverity = 'info' | 'warning' | 'critical'

/** One event in an alert's life (iot.alerts, keyed by deviceId). One open alert per (rule, device); alertId is derived from (ruleId, deviceId, raisedAt), so a replay, a crash or a rebalance produces the same id. */
export interface Alert {
  /** Deterministic id: hex SHA-256 of ruleId, deviceId and raisedAt (first 32 characters). */
  alertId: string
  /** What happened to the alert. */
  event: AlertEvent
  ruleId: string
  ruleName: string
  /** Device id; also the Kafka record key. */
  deviceId: string
  tenant: null | string
  severity: AlertSeverity
  /** Event time of this event (the reading, or the watermark for absence), ms. */
  ts: number
  /** Event time the alert was raised, ms. */
  raisedAt: number
  /** The metric the rule watches, when it watches one. */
  metric: null | string
  /** The value that caused this event, when there is one. */
  value: null | number
  /** Human-readable summary. */
  message: string
}

export interface MetricLimit {
  min: null | number
  max: null | number
}

/** A device's registry entry (compacted topic iot.devices, keyed by deviceId; a tombstone removes the device). */
export interface Device {
  /** Device id; also the Kafka record key. */
  deviceId: string
  /** Owning tenant. */
  tenant: null | string
  /** Where the device is installed. */
  site: null | string
  /** Hardware model. */
  model: null | string
  /** Free-form labels. */
  tags: Record<string, string>
  /** Expected range per metric (used by range rules). */
  limits: Record<string, MetricLimit>
}

/** Symbols of the Avro enum RollupKind. */
export type RollupKind = 'final' | 'update' | 'retract'

/** The aggregate of one metric of one device over one event-time window (iot.rollups.1m / iot.rollups.1h). Keyed by deviceId; a later record for the same (deviceId, metric, windowStart) corrects the earlier one. */
export interface Rollup {
  /** Device id; also the Kafka record key. */
  deviceId: string
  /** Metric name. */
  metric: string
  /** Window start (inclusive), ms. */
  windowStart: number
  /** Window end (exclusive), ms. */
  windowEnd: number
  /** Readings in the window. */
  count: number
  min: number
  max: number
  sum: number
  avg: number
  /** Value of the earliest reading by event time. */
  first: number
  /** Value of the latest reading by event time. */
  last: number
  /** final: the window closed; update: a late reading corrected it; retract: a session merged away. */
  kind: RollupKind
}

/** A rule as published to the compacted topic iot.rules, keyed by ruleId (a tombstone removes the rule). The rule itself is the JSON of its YAML form, validated against rules/rule.schema.json by whoever reads it. */
export interface RuleDefinition {
  /** The rule's id; also the Kafka record key. */
  ruleId: string
  /** The rule, as JSON (the YAML form). */
  definition: string
  /** When it was published, ms. */
  publishedAt: number
  /** Where it came from (a file name), when known. */
  source: null | string
}

/** Symbols of the Avro enum Source. */
export type Source = 'mqtt' | 'http' | 'bridge'

/** One device reading as it travels through fleetstream (the envelope of every telemetry topic). */
export interface Telemetry {
  /** Device id; also the Kafka record key. */
  deviceId: string
  /** Owning tenant, when known. */
  tenant: null | string
  /** Event time (ms since epoch). */
  ts: number
  /** When the bridge received it (ms since epoch). */
  receivedAt: number
  /** Device sequence number, when the device sends one. */
  seq: null | number
  /** Readings by metric name. */
  metrics: Record<string, number | boolean | string>
  /** Device-reported attributes (firmware, battery) and flags. */
  meta: Record<string, string>
  /** How the reading entered fleetstream. */
  source: Source
}
