import { ConfigError } from '../errors'
import { envNameToPath, loadConfig } from './load'
import { coreConfig } from './schema'

function issuesOf(fn: () => unknown): { key: string; source: string; message: string }[] {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return [...(err as ConfigError).issues]
  }
  throw new Error('expected a ConfigError')
}

describe('core > config > load', () => {
  it('fills every default from an empty document', () => {
    const cfg = loadConfig(coreConfig, { yamlText: '' })
    expect(cfg.kafka.brokers).toEqual(['127.0.0.1:9092'])
    expect(cfg.topics.raw).toBe('iot.telemetry.raw')
    expect(cfg.topics.devices).toBe('iot.devices')
    expect(cfg.schemaRegistry).toEqual({ kind: 'local' })
    expect(cfg.log.level).toBe('info')
    expect(cfg.debugDataFlow).toBe(false)
  })

  it('returns a deeply frozen object', () => {
    const cfg = loadConfig(coreConfig, { yamlText: 'kafka: { brokers: [a:1] }' })
    expect(Object.isFrozen(cfg)).toBe(true)
    expect(Object.isFrozen(cfg.kafka)).toBe(true)
    expect(Object.isFrozen(cfg.kafka.brokers)).toBe(true)
  })

  it('maps environment names to camelCase key paths', () => {
    expect(envNameToPath('KAFKA__CLIENT_ID')).toEqual(['kafka', 'clientId'])
    expect(envNameToPath('TOPICS__ROLLUPS1M')).toEqual(['topics', 'rollups1m'])
    expect(envNameToPath('DEBUG_DATA_FLOW')).toEqual(['debugDataFlow'])
  })

  it('applies FLEETSTREAM_* overrides over the file, with typed values', () => {
    const cfg = loadConfig(coreConfig, {
      yamlText: 'kafka:\n  brokers: [file:1]\ntopics:\n  partitions: 3\n',
      env: {
        FLEETSTREAM_KAFKA__BROKERS: 'a:9092, b:9093',
        FLEETSTREAM_TOPICS__PARTITIONS: '12',
        FLEETSTREAM_KAFKA__SSL: 'true',
        DEBUG_DATA_FLOW: 'true',
        UNRELATED: 'x',
      },
    })
    expect(cfg.kafka.brokers).toEqual(['a:9092', 'b:9093'])
    expect(cfg.topics.partitions).toBe(12)
    expect(cfg.kafka.ssl).toBe(true)
    expect(cfg.debugDataFlow).toBe(true)
  })

  // Table: each bad document names its bad key (and the source) in the error.
  const cases: {
    name: string
    yaml: string
    env?: Record<string, string>
    key: string
    source: RegExp
    message: RegExp
  }[] = [
    {
      name: 'unknown top-level key',
      yaml: 'kafak: {}',
      key: 'kafak',
      source: /file fleet.yaml/,
      message: /unknown key/,
    },
    {
      name: 'unknown nested key',
      yaml: 'kafka: { brokerz: [a:1] }',
      key: 'kafka.brokerz',
      source: /file fleet.yaml/,
      message: /unknown key/,
    },
    {
      name: 'wrong type',
      yaml: 'topics: { partitions: many }',
      key: 'topics.partitions',
      source: /file fleet.yaml/,
      message: /expected number/,
    },
    {
      name: 'out of range',
      yaml: 'topics: { partitions: 0 }',
      key: 'topics.partitions',
      source: /file fleet.yaml/,
      message: />=1|too small/i,
    },
    {
      name: 'bad broker address',
      yaml: 'kafka: { brokers: [nohost] }',
      key: 'kafka.brokers.0',
      source: /file fleet.yaml/,
      message: /host:port/,
    },
    {
      name: 'bad enum',
      yaml: 'log: { level: loud }',
      key: 'log.level',
      source: /file fleet.yaml/,
      message: /expected one of/,
    },
    {
      name: 'bad per-module level',
      yaml: 'log: { levels: { bridge.mqtt: chatty } }',
      key: 'log.levels.bridge.mqtt',
      source: /file fleet.yaml/,
      message: /expected one of/,
    },
    {
      name: 'registry url missing',
      yaml: 'schemaRegistry: { kind: confluent }',
      key: 'schemaRegistry.url',
      source: /file fleet.yaml/,
      message: /expected string/,
    },
    {
      name: 'unknown registry kind',
      yaml: 'schemaRegistry: { kind: remote }',
      key: 'schemaRegistry.kind',
      source: /file fleet.yaml/,
      message: /invalid|expected/i,
    },
    {
      name: 'sasl mechanism',
      yaml: 'kafka: { sasl: { mechanism: md5, username: u, password: p } }',
      key: 'kafka.sasl.mechanism',
      source: /file fleet.yaml/,
      message: /expected one of/,
    },
    {
      name: 'bad env value',
      yaml: '',
      env: { FLEETSTREAM_TOPICS__PARTITIONS: 'lots' },
      key: 'topics.partitions',
      source: /FLEETSTREAM_TOPICS__PARTITIONS/,
      message: /expected number/,
    },
    {
      name: 'unknown env key',
      yaml: '',
      env: { FLEETSTREAM_KAFKA__BROKER: 'a:1' },
      key: 'kafka.broker',
      source: /FLEETSTREAM_KAFKA__BROKER\b/,
      message: /unknown key/,
    },
    {
      name: 'bad DEBUG_DATA_FLOW',
      yaml: '',
      env: { DEBUG_DATA_FLOW: 'maybe' },
      key: 'debugDataFlow',
      source: /DEBUG_DATA_FLOW/,
      message: /expected boolean/,
    },
  ]
  it.each(cases)('names the bad key: $name', ({ yaml, env, key, source, message }) => {
    const issues = issuesOf(() => loadConfig(coreConfig, { file: 'fleet.yaml', yamlText: yaml, env }))
    const hit = issues.find((i) => i.key === key)
    expect(hit).toBeDefined()
    expect(hit!.source).toMatch(source)
    expect(hit!.message).toMatch(message)
  })

  it('puts every bad key in the message, one line each', () => {
    try {
      loadConfig(coreConfig, { yamlText: 'kafak: 1\ntopics: { partitions: x }', file: 'fleet.yaml' })
      throw new Error('expected a ConfigError')
    } catch (err) {
      expect((err as ConfigError).code).toBe('FS_CORE_CONFIG')
      expect((err as Error).message).toMatch(/- kafak \(file fleet.yaml\): unknown key/)
      expect((err as Error).message).toMatch(/- topics.partitions \(file fleet.yaml\): .*expected number/)
    }
  })

  it('rejects YAML that does not parse, and a document that is not a mapping', () => {
    expect(issuesOf(() => loadConfig(coreConfig, { yamlText: 'kafka: [unclosed' }))[0]!.message).toMatch(
      /not valid YAML/,
    )
    expect(issuesOf(() => loadConfig(coreConfig, { yamlText: '- a\n- b' }))[0]!.message).toMatch(/mapping/)
  })

  it('reports an unreadable file as a config error, not a crash', () => {
    expect(issuesOf(() => loadConfig(coreConfig, { file: '/nonexistent/fleet.yaml' }))[0]!.message).toMatch(
      /cannot read/,
    )
  })
})
