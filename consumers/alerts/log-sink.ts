import type { Logger } from '../../core/logging/logger'
import type { AlertSink } from './deliver'

/** Writes each alert event as one structured log line (level by severity). */
export function logSink(logger: Logger): AlertSink {
  const log = logger.child({ component: 'alerts.log' })
  return {
    name: 'log',
    async deliver(a) {
      const level = a.severity === 'critical' ? 'error' : a.severity === 'warning' ? 'warn' : 'info'
      log.log(level, `alert ${a.event}: ${a.message}`, {
        alertId: a.alertId,
        event: a.event,
        ruleId: a.ruleId,
        deviceId: a.deviceId,
        severity: a.severity,
        ts: a.ts,
      })
    },
    close: async () => undefined,
  }
}
