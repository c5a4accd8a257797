import { Counter, Registry, collectDefaultMetrics } from 'prom-client'

/** Metrics of the alert consumers, by sink. */
export class AlertMetrics {
  readonly registry = new Registry()
  readonly attempts = new Counter({
    name: 'fleetstream_alerts_delivery_attempts_total',
    help: 'Delivery attempts, by sink',
    labelNames: ['sink'],
    registers: [this.registry],
  })
  readonly delivered = new Counter({
    name: 'fleetstream_alerts_delivered_total',
    help: 'Alert events delivered, by sink',
    labelNames: ['sink'],
    registers: [this.registry],
  })
  readonly failures = new Counter({
    name: 'fleetstream_alerts_delivery_failures_total',
    help: 'Failed delivery attempts, by sink',
    labelNames: ['sink'],
    registers: [this.registry],
  })
  readonly deadLettered = new Counter({
    name: 'fleetstream_alerts_deadletter_total',
    help: 'Alert events given up on (sent to the dead-letter topic), by sink',
    labelNames: ['sink'],
    registers: [this.registry],
  })

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry })
  }
}
