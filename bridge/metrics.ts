import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/** Where a message came in. */
export type IngestSource = 'mqtt' | 'http'

/** Counts by source, kept as plain numbers (see BridgeMetrics.count). */
export type SourceCounts = Record<IngestSource, number>

/** The labels of each source, made once: a labels object per call is garbage per message. */
export const SOURCE_LABELS: Readonly<Record<IngestSource, { source: IngestSource }>> = {
  mqtt: { source: 'mqtt' },
  http: { source: 'http' },
}

/**
 * A prom-client `collect` that hands the counter what `counts` gained since the last scrape.
 * Per-message counters count in plain numbers: prom-client's inc() builds a key string from
 * the labels on every call, several times per message on the bridge's hot path.
 */
function flushCounts(counts: SourceCounts) {
  const reported: SourceCounts = { mqtt: 0, http: 0 }
  return function (this: Counter<'source'>) {
    for (const source of ['mqtt', 'http'] as const) {
      const gained = counts[source] - reported[source]
      if (gained > 0) this.inc(SOURCE_LABELS[source], gained)
      reported[source] = counts[source]
    }
  }
}

/** A prom-client `collect` that sets the gauge from `read` when scraped. */
function readGauge(read: () => number) {
  return function (this: Gauge) {
    this.set(read())
  }
}

/** The bridge's Prometheus metrics, on their own registry (one per bridge instance). */
export class BridgeMetrics {
  readonly registry = new Registry()
  /** Messages received, by source: add to these; the counter reads them when scraped. */
  readonly count = {
    received: { mqtt: 0, http: 0 } as SourceCounts,
    accepted: { mqtt: 0, http: 0 } as SourceCounts,
  }
  /** Read when scraped: records waiting for or in a Kafka write. */
  bufferedRecords: () => number = () => 0
  /** Set by the embedded MQTT broker: connections waiting at its login gate. */
  loginsWaiting: () => number = () => 0
  readonly received = new Counter({
    name: 'fleetstream_bridge_received_total',
    help: 'Messages received',
    labelNames: ['source'],
    registers: [this.registry],
    collect: flushCounts(this.count.received),
  })
  readonly accepted = new Counter({
    name: 'fleetstream_bridge_accepted_total',
    help: 'Readings durably written to Kafka',
    labelNames: ['source'],
    registers: [this.registry],
    collect: flushCounts(this.count.accepted),
  })
  readonly rejected = new Counter({
    name: 'fleetstream_bridge_rejected_total',
    help: 'Messages or readings refused, by reason code',
    labelNames: ['source', 'reason'],
    registers: [this.registry],
  })
  readonly deadLettered = new Counter({
    name: 'fleetstream_bridge_deadletter_total',
    help: 'Records written to the dead-letter topic, by reason code',
    labelNames: ['reason'],
    registers: [this.registry],
  })
  readonly duplicates = new Counter({
    name: 'fleetstream_bridge_duplicates_dropped_total',
    help: 'Exact (deviceId, ts, seq) duplicates dropped',
    registers: [this.registry],
  })
  readonly seqGaps = new Counter({
    name: 'fleetstream_bridge_seq_gaps_total',
    help: 'Gaps in device sequence numbers',
    registers: [this.registry],
  })
  readonly seqMissing = new Counter({
    name: 'fleetstream_bridge_seq_missing_total',
    help: 'Sequence numbers skipped by devices',
    registers: [this.registry],
  })
  readonly seqReorders = new Counter({
    name: 'fleetstream_bridge_seq_reorders_total',
    help: 'Readings arriving below the highest sequence number seen',
    registers: [this.registry],
  })
  readonly drift = new Counter({
    name: 'fleetstream_bridge_schema_drift_total',
    help: 'Readings with new metric names or changed types',
    labelNames: ['policy'],
    registers: [this.registry],
  })
  readonly pushback = new Counter({
    name: 'fleetstream_bridge_pushback_total',
    help: 'Messages refused for now because Kafka is slow or the buffer is full',
    labelNames: ['source'],
    registers: [this.registry],
  })
  readonly qos0Dropped = new Counter({
    name: 'fleetstream_bridge_qos0_dropped_total',
    help: 'QoS 0 messages dropped under pushback',
    registers: [this.registry],
  })
  readonly rateLimited = new Counter({
    name: 'fleetstream_bridge_rate_limited_total',
    help: 'Messages over a device rate limit',
    labelNames: ['source'],
    registers: [this.registry],
  })
  readonly authFailures = new Counter({
    name: 'fleetstream_bridge_auth_failures_total',
    help: 'Refused connections, logins and publishes',
    labelNames: ['source', 'reason'],
    registers: [this.registry],
  })
  readonly connections = new Gauge({
    name: 'fleetstream_bridge_connections',
    help: 'Connected MQTT clients',
    labelNames: ['transport'],
    registers: [this.registry],
  })
  readonly loginsQueued = new Gauge({
    name: 'fleetstream_bridge_logins_waiting',
    help: 'MQTT connections waiting at the login gate (limits.maxLoginsInFlight)',
    registers: [this.registry],
    collect: readGauge(() => this.loginsWaiting()),
  })
  readonly buffered = new Gauge({
    name: 'fleetstream_bridge_buffered_records',
    help: 'Records waiting for or in a Kafka write',
    registers: [this.registry],
    collect: readGauge(() => this.bufferedRecords()),
  })
  readonly produceLatency = new Histogram({
    name: 'fleetstream_bridge_produce_latency_seconds',
    help: 'Kafka write latency per batch (acks=all)',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  })
  readonly ackLatency = new Histogram({
    name: 'fleetstream_bridge_ack_latency_seconds',
    help: 'From receipt to durable in Kafka, per message',
    labelNames: ['source'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  })

  constructor(withProcessMetrics = true) {
    if (withProcessMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'fleetstream_bridge_' })
  }
}
