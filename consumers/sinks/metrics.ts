import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/** Metrics of a sink process, by store and table kind (telemetry, rollups, alerts, devices). */
export class SinkMetrics {
  readonly registry = new Registry()
  readonly rows = new Counter({
    name: 'fleetstream_sink_rows_total',
    help: 'Records written to the store, by store and kind',
    labelNames: ['store', 'kind'],
    registers: [this.registry],
  })
  readonly errors = new Counter({
    name: 'fleetstream_sink_errors_total',
    help: 'Failed writes (each attempt), by store and whether retriable',
    labelNames: ['store', 'retriable'],
    registers: [this.registry],
  })
  readonly deadLettered = new Counter({
    name: 'fleetstream_sink_deadletter_total',
    help: 'Records sent to the dead-letter topic, by store and reason code',
    labelNames: ['store', 'reason'],
    registers: [this.registry],
  })
  readonly batchSeconds = new Histogram({
    name: 'fleetstream_sink_batch_seconds',
    help: 'Time to write one consumed batch (with retries), by store and kind',
    labelNames: ['store', 'kind'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  })

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry })
  }
}
