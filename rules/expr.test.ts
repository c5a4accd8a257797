import {
  compileCondition,
  ExpressionError,
  MAX_EXPRESSION_DEPTH,
  MAX_EXPRESSION_LENGTH,
  requiredMetrics,
  type ConditionInput,
} from './expr'

describe('rules > expressions (CEL)', () => {
  const input: ConditionInput = {
    deviceId: 'd1',
    tenant: 'acme',
    ts: 1_764_000_000_000,
    metrics: { temperature: 9.5, door: 'open', compressor: true, count: 3 },
    meta: { site: 'north', 'tag.zone': 'cold' },
    device: { site: 'north', model: 'TH-200', tags: { zone: 'cold' } },
  }
  const run = (src: string, i = input) => compileCondition(src)(i)

  it('skips a condition whose required metric is missing, with the same verdict CEL gives', () => {
    const noDoor = { ...input, metrics: { temperature: 9.5 } }
    for (const src of [
      'metrics.door == "open" && metrics.compressor == true',
      'metrics["door"] == "open"',
      '!(metrics.door == "open")',
    ]) {
      expect(requiredMetrics(src)).toContain('door')
      const skipped = run(src, noDoor)
      expect(skipped.ok).toBe(false) // CEL itself: an error (no such key), which counts as false
    }
    // Where CEL can turn a missing key into true, the condition runs.
    for (const [src, want] of [
      ['!has(metrics.door)', true],
      ['metrics.door == "open" || metrics.temperature > 9', true],
      ['"door" in metrics ? metrics.door == "open" : true', true],
    ] as const) {
      expect(requiredMetrics(src)).toBeNull()
      expect(run(src, noDoor)).toEqual({ ok: true, value: want })
    }
    // A name inside a string literal is not a reference.
    expect(requiredMetrics('meta.note == "metrics.door"')).toEqual([])
  })

  it.each([
    ['metrics.temperature > 8.0', true],
    ['metrics.temperature > 8', true], // int and double compare
    ['metrics.door == "open" && metrics.compressor', true],
    ['meta["tag.zone"] == "cold" && device.model.startsWith("TH")', true],
    ['device.tags.zone == "cold" && tenant == "acme"', true],
    ['has(metrics.humidity)', false],
    ['"temperature" in metrics && metrics.count >= 3', true],
    ['ts > 1764000000000', false],
    ['deviceId.matches("^d[0-9]+$")', true],
  ])('%s → %s', (src, want) => {
    expect(run(src)).toEqual({ ok: true, value: want })
  })

  it('a missing metric or a non-boolean result is an error, not true', () => {
    expect(run('metrics.humidity > 50')).toMatchObject({ ok: false })
    expect(run('metrics.temperature + 1.0')).toEqual({
      ok: false,
      error: 'the condition gave number, not a boolean',
    })
  })

  it.each([
    ['constructor', 'no prototype names in scope'],
    ['metrics.__proto__ == null', 'no prototype keys on maps'],
    ['metrics.constructor.name == "Map"', 'no JS object members'],
    ['deviceId.constructor("x")', 'no JS methods'],
  ])('hostile %s is refused or false (%s)', (src) => {
    let r
    try {
      r = run(src)
    } catch (err) {
      expect(err).toBeInstanceOf(ExpressionError)
      return
    }
    expect(r).toMatchObject({ ok: false })
  })

  it('refuses over-long, over-deep and malformed expressions with a clear error', () => {
    expect(() => compileCondition('true && '.repeat(300) + 'true')).toThrow(
      new RegExp(`expression too long \\(\\d+ > ${MAX_EXPRESSION_LENGTH} characters\\)`),
    )
    expect(() => compileCondition('('.repeat(200) + '1' + ')'.repeat(200))).toThrow(
      `expression nested too deeply (200 > ${MAX_EXPRESSION_DEPTH} levels)`,
    )
    expect(() => compileCondition('[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]')).toThrow(
      /nested too deeply/,
    )
    expect(() => compileCondition('metrics.temperature >')).toThrow(ExpressionError)
    // Brackets inside strings do not count as nesting.
    expect(run(`meta.site != "${'('.repeat(100)}"`)).toEqual({ ok: true, value: true })
  })
})
