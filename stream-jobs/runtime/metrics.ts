import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/** A stream job's Prometheus metrics, on their own registry (one per running job). */
export class JobMetrics {
  readonly registry = new Registry()
  readonly recordsIn = new Counter({
    name: 'fleetstream_job_records_in_total',
    help: 'Records consumed, by input topic',
    labelNames: ['job', 'topic'],
    registers: [this.registry],
  })
  readonly recordsOut = new Counter({
    name: 'fleetstream_job_records_out_total',
    help: 'Records committed to output topics (changelog excluded), by topic',
    labelNames: ['job', 'topic'],
    registers: [this.registry],
  })
  readonly firings = new Counter({
    name: 'fleetstream_job_window_firings_total',
    help: 'Window results emitted, by kind (final, update, retract)',
    labelNames: ['job', 'kind'],
    registers: [this.registry],
  })
  readonly late = new Counter({
    name: 'fleetstream_job_late_records_total',
    help: 'Readings later than the allowed lateness (sent to the late topic)',
    labelNames: ['job'],
    registers: [this.registry],
  })
  readonly dropped = new Counter({
    name: 'fleetstream_job_dropped_records_total',
    help: 'Records refused (dead-lettered), by reason code',
    labelNames: ['job', 'reason'],
    registers: [this.registry],
  })
  readonly transactions = new Counter({
    name: 'fleetstream_job_transactions_total',
    help: 'Kafka transactions, by outcome (committed, aborted)',
    labelNames: ['job', 'outcome'],
    registers: [this.registry],
  })
  readonly batchFailures = new Counter({
    name: 'fleetstream_job_batch_failures_total',
    help: 'Batches whose step or transaction failed (state restored, batch retried)',
    labelNames: ['job'],
    registers: [this.registry],
  })
  readonly skipped = new Counter({
    name: 'fleetstream_job_skipped_records_total',
    help: 'Records delivered again that the partition state already reflects (not processed twice)',
    labelNames: ['job'],
    registers: [this.registry],
  })
  readonly watermarkLag = new Gauge({
    name: 'fleetstream_job_watermark_lag_ms',
    help: 'Processing time minus the watermark, per input partition',
    labelNames: ['job', 'partition'],
    registers: [this.registry],
  })
  readonly stateEntries = new Gauge({
    name: 'fleetstream_job_state_entries',
    help: 'Entries of the operator state (open windows, registry entries), per partition',
    labelNames: ['job', 'partition'],
    registers: [this.registry],
  })
  readonly consumerLag = new Gauge({
    name: 'fleetstream_job_consumer_lag',
    help: 'Records of an assigned input partition not yet processed (end offset - next offset)',
    labelNames: ['job', 'topic', 'partition'],
    registers: [this.registry],
  })
  readonly restoreSeconds = new Histogram({
    name: 'fleetstream_job_restore_seconds',
    help: 'Time to restore one partition state from the changelog',
    labelNames: ['job'],
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60],
    registers: [this.registry],
  })
  readonly restoredEntries = new Counter({
    name: 'fleetstream_job_restored_entries_total',
    help: 'Changelog entries applied while restoring state',
    labelNames: ['job'],
    registers: [this.registry],
  })
  readonly batchSeconds = new Histogram({
    name: 'fleetstream_job_batch_seconds',
    help: 'Time to process and commit one input batch',
    labelNames: ['job'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  })

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry })
  }
}
