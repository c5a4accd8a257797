import { Counter, Gauge, type Registry } from 'prom-client'

/** Metrics of the rule engine, on the registry of the process running it. */
export class RuleMetrics {
  readonly loaded: Gauge
  readonly invalid: Counter
  readonly evaluations: Counter
  readonly errors: Counter
  readonly events: Counter
  readonly debounced: Counter

  constructor(registry: Registry) {
    const registers = [registry]
    this.loaded = new Gauge({ name: 'fleetstream_rules_loaded', help: 'Rules in force', registers })
    this.invalid = new Counter({
      name: 'fleetstream_rules_invalid_total',
      help: 'Rule definitions refused (the previous version of the rule stays in force)',
      registers,
    })
    this.evaluations = new Counter({
      name: 'fleetstream_rules_evaluations_total',
      help: 'Rule evaluations (a reading through a rule in scope)',
      registers,
    })
    this.errors = new Counter({
      name: 'fleetstream_rules_evaluation_errors_total',
      help: 'Condition evaluations that failed (missing metric, wrong type), by rule',
      labelNames: ['rule'],
      registers,
    })
    this.events = new Counter({
      name: 'fleetstream_rules_alert_events_total',
      help: 'Alert events (raised, updated, cleared), by rule',
      labelNames: ['rule', 'event'],
      registers,
    })
    this.debounced = new Counter({
      name: 'fleetstream_rules_debounced_total',
      help: 'Triggering readings held back by debounce (for: N readings or a duration), by rule',
      labelNames: ['rule'],
      registers,
    })
  }
}
