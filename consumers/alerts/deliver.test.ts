import { createHmac } from 'node:crypto'
import { backoffMs } from './deliver'
import { signatureOf } from './webhook'

describe('consumers > alerts > retry and signature', () => {
  it('backs off exponentially from the initial delay, capped, with ±20% jitter', () => {
    const p = { maxAttempts: 10, initialBackoffMs: 500, maxBackoffMs: 30_000 }
    expect([1, 2, 3, 4, 7, 8].map((n) => backoffMs(p, n, () => 0.5))).toEqual([
      500, 1000, 2000, 4000, 30_000, 30_000,
    ])
    expect(backoffMs(p, 1, () => 0)).toBe(400)
    expect(backoffMs(p, 1, () => 1)).toBe(600)
  })

  it('signs "<t>.<body>" with HMAC-SHA256 and puts t in the header', () => {
    const body = '{"alertId":"x"}'
    expect(signatureOf('k'.repeat(16), 1_700_000_000_000, body)).toBe(
      `t=1700000000000,v1=${createHmac('sha256', 'k'.repeat(16)).update(`1700000000000.${body}`).digest('hex')}`,
    )
  })
})
