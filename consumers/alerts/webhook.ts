import { createHmac } from 'node:crypto'
import type { Alert } from '../../schemas/types.generated'
import { DeliveryError, type AlertSink } from './deliver'

/** Header carrying `t=<unix ms>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. */
export const SIGNATURE_HEADER = 'x-fleetstream-signature'
/** Header carrying the event id receivers dedupe on: `<alertId>:<event>:<ts>`. */
export const EVENT_ID_HEADER = 'x-fleetstream-event-id'

/** The signature header value for `body` sent at `t` (ms). */
export function signatureOf(secret: string, t: number, body: string): string {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`
}

/** An alert event's id: the same event always has the same id (deduplication by receivers). */
export const eventIdOf = (a: Alert): string => `${a.alertId}:${a.event}:${a.ts}`

/**
 * POSTs each alert event as JSON, signed like widely used webhook schemes (a timestamp and an
 * HMAC-SHA256 over timestamp and body, so a receiver can check origin and refuse replays).
 * 2xx is delivered; 408, 429, 5xx and network errors are retried; other 4xx are final.
 */
export function webhookSink(o: {
  url: string
  secret: string
  timeoutMs: number
  now?: () => number
}): AlertSink {
  return {
    name: 'webhook',
    async deliver(alert) {
      const body = JSON.stringify(alert)
      const t = (o.now ?? Date.now)()
      let res: Response
      try {
        res = await fetch(o.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            [SIGNATURE_HEADER]: signatureOf(o.secret, t, body),
            [EVENT_ID_HEADER]: eventIdOf(alert),
          },
          body,
          signal: AbortSignal.timeout(o.timeoutMs),
        })
      } catch (err) {
        throw new DeliveryError(`POST ${new URL(o.url).host}: ${(err as Error).message}`, true)
      }
      await res.body?.cancel().catch(() => undefined)
      if (res.ok) return
      const retriable = res.status === 408 || res.status === 429 || res.status >= 500
      throw new DeliveryError(`POST ${new URL(o.url).host}: HTTP ${res.status}`, retriable)
    },
    close: async () => undefined,
  }
}
