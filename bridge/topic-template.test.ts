import { ConfigError } from '../core/errors'
import { RejectError } from './errors'
import { compileTopicTemplate, matchTopic } from './topic-template'

describe('bridge > topic templates', () => {
  const telemetry = compileTopicTemplate('devices/{deviceId}/telemetry')
  const site = compileTopicTemplate('{site}/{deviceId}')

  it.each([
    ['devices/d-1/telemetry', telemetry, { deviceId: 'd-1' }],
    ['devices/sensor.42/telemetry', telemetry, { deviceId: 'sensor.42' }],
    ['plant-3/d9', site, { site: 'plant-3', deviceId: 'd9' }],
  ])('%s matches', (topic, tpl, vars) => {
    expect(tpl.match(topic)).toEqual(vars)
  })

  it.each([
    ['devices/d-1/telemetry/extra', telemetry],
    ['devices//telemetry', telemetry],
    ['devices/+/telemetry', telemetry],
    ['devices/#/telemetry', telemetry],
    ['Devices/d1/telemetry', telemetry],
    ['devices/d1/telemetryX', telemetry],
    ['devices/$SYS/telemetry', telemetry],
    ['plant-3', site],
    ['a/b/c', site],
  ])('%s does not match (strict)', (topic, tpl) => {
    expect(tpl.match(topic)).toBeUndefined()
  })

  it('escapes regex characters in literal levels', () => {
    expect(compileTopicTemplate('a.b/{deviceId}').match('aXb/d')).toBeUndefined()
    expect(compileTopicTemplate('a.b/{deviceId}').match('a.b/d')).toEqual({ deviceId: 'd' })
  })

  it('formats a topic from variables (downlink topics)', () => {
    expect(compileTopicTemplate('devices/{deviceId}/downlink').format({ deviceId: 'd7' })).toBe(
      'devices/d7/downlink',
    )
    expect(() => compileTopicTemplate('devices/{deviceId}/downlink').format({ deviceId: 'a/b' })).toThrow()
  })

  it.each([
    ['devices/telemetry', /must contain \{deviceId\}/],
    ['devices/{deviceId}/{deviceId}', /appears twice/],
    ['devices/+/{deviceId}', /literal/],
    ['devices//{deviceId}', /literal/],
    ['devices/x{deviceId}', /literal/],
  ])('rejects the template %s', (tpl, msg) => {
    expect(() => compileTopicTemplate(tpl)).toThrow(ConfigError)
    expect(() => compileTopicTemplate(tpl)).toThrow(msg)
  })

  it('matchTopic tries templates in order and rejects unknown or too deep topics', () => {
    expect(matchTopic([telemetry, site], 'p/d', 16)).toEqual({ site: 'p', deviceId: 'd' })
    const deep = Array.from({ length: 1000 }, () => 'a').join('/')
    expect(() => matchTopic([telemetry], deep, 16)).toThrow(/1000 levels; at most 16/)
    const err = (() => {
      try {
        matchTopic([telemetry], 'nope/x', 16)
      } catch (e) {
        return e
      }
    })()
    expect(err).toBeInstanceOf(RejectError)
    expect((err as RejectError).code).toBe('FS_BRIDGE_TOPIC')
  })
})
