import { createLogger, dataFlowTracer, levelFor, redact, redactText } from './logger'
import { LogCapture } from '../../test/log-capture'

describe('core > logging > logger', () => {
  it('writes JSON lines with level, message, fields and timestamp', () => {
    const cap = new LogCapture()
    const log = createLogger({ transports: [cap] })
    log.child({ component: 'bridge.mqtt' }).info('client connected', { deviceId: 'd1', partition: 3 })
    expect(cap.lines).toHaveLength(1)
    expect(cap.lines[0]).toMatchObject({
      level: 'info',
      message: 'client connected',
      component: 'bridge.mqtt',
      deviceId: 'd1',
      partition: 3,
    })
    expect(typeof cap.lines[0]!.timestamp).toBe('string')
  })

  it('applies levels per component, by longest dotted prefix', () => {
    const cap = new LogCapture()
    const log = createLogger({
      level: 'warn',
      levels: { bridge: 'info', 'bridge.mqtt': 'debug' },
      transports: [cap],
    })
    log.child({ component: 'bridge.mqtt' }).debug('mqtt debug')
    log.child({ component: 'bridge.http' }).debug('http debug (dropped)')
    log.child({ component: 'bridge.http' }).info('http info')
    log.child({ component: 'stream-jobs' }).info('jobs info (dropped)')
    log.child({ component: 'stream-jobs' }).warn('jobs warn')
    expect(cap.lines.map((l) => l.message)).toEqual(['mqtt debug', 'http info', 'jobs warn'])
  })

  it('levelFor matches whole dotted segments only', () => {
    expect(levelFor('bridgework', 'info', { bridge: 'debug' })).toBe('info')
    expect(levelFor('bridge.x.y', 'info', { bridge: 'debug', 'bridge.x': 'error' })).toBe('error')
  })

  it('never writes secrets: secret-named fields, nested ones, and passwords in URLs', () => {
    const cap = new LogCapture()
    const log = createLogger({ transports: [cap] })
    log.info('connecting to postgres://fleet:s3cr3t@db:5432/x', {
      password: 'hunter2',
      apiKey: 'k-123',
      kafka: { sasl: { username: 'u', password: 'p4ss' } },
      headers: { authorization: 'Bearer abc' },
      url: 'mqtt://dev:tok3n@broker:1883',
    })
    const text = JSON.stringify(cap.lines)
    for (const secret of ['s3cr3t', 'hunter2', 'k-123', 'p4ss', 'Bearer abc', 'tok3n'])
      expect(text).not.toContain(secret)
    expect(cap.lines[0]).toMatchObject({
      password: '[redacted]',
      apiKey: '[redacted]',
      kafka: { sasl: { username: 'u', password: '[redacted]' } },
    })
  })

  it('keeps the stack of a logged error', () => {
    const cap = new LogCapture()
    createLogger({ transports: [cap] }).error('failed', { err: new Error('boom') })
    expect(JSON.stringify(cap.lines[0])).toContain('boom')
  })

  it('redact and redactText leave ordinary values alone', () => {
    expect(redact({ deviceId: 'd', n: 1, ok: true, list: ['a'] })).toEqual({
      deviceId: 'd',
      n: 1,
      ok: true,
      list: ['a'],
    })
    expect(redactText('http://host:8080/path')).toBe('http://host:8080/path')
  })

  it('traces data flow only when enabled', () => {
    const cap = new LogCapture()
    const log = createLogger({ transports: [cap] })
    dataFlowTracer(log, false)('bridge.accepted', { deviceId: 'd1' })
    expect(cap.lines).toHaveLength(0)
    dataFlowTracer(log, true)('bridge.accepted', { deviceId: 'd1', topic: 't', partition: 2, offset: '5' })
    expect(cap.lines[0]).toMatchObject({
      component: 'dataflow',
      stage: 'bridge.accepted',
      deviceId: 'd1',
      offset: '5',
    })
  })
})
