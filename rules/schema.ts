import { z } from 'zod'

/** A duration: milliseconds, or a string such as `90s`, `2m`, `1h`, `500ms`. */
export const duration = z.union(
  [
    z.number().int().min(0),
    z
      .string()
      .regex(/^\d+(ms|s|m|h|d)$/, 'a duration such as 500ms, 30s, 2m, 1h or 1d')
      .transform((s) => {
        const [, n, unit] = /^(\d+)(ms|s|m|h|d)$/.exec(s)!
        const ms = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
          unit as 'ms' | 's' | 'm' | 'h' | 'd'
        ]
        return Number(n) * ms
      }),
  ],
  { error: 'a duration: milliseconds, or such as 500ms, 30s, 2m, 1h, 1d' },
)

const metricName = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'a metric name (letters, digits, _ . : -)')

/** Which devices a rule applies to; every field given must match (tags: all listed tags). */
const scope = z
  .strictObject({
    tenant: z.string().min(1).optional(),
    site: z.string().min(1).optional(),
    model: z.string().min(1).optional(),
    tags: z.record(z.string().min(1), z.string()).optional(),
  })
  .default({})

/** Debounce: the condition must hold for this many consecutive readings, or this long. */
const debounce = z
  .strictObject({ readings: z.number().int().min(1).optional(), duration: duration.optional() })
  .refine((d) => (d.readings === undefined) !== (d.duration === undefined), 'give readings or duration')

const common = {
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lower-case letters, digits and dashes, at most 63'),
  name: z.string().min(1).max(200).optional(),
  description: z.string().max(2000).optional(),
  severity: z.enum(['info', 'warning', 'critical']).default('warning'),
  enabled: z.boolean().default(true),
  scope,
  for: debounce.optional(),
}

/** `metric` above / below a value; clears past `clear` (hysteresis) or when back inside. */
const threshold = z.strictObject({
  ...common,
  kind: z.literal('threshold'),
  metric: metricName,
  above: z.number().optional(),
  below: z.number().optional(),
  /** Hysteresis: the alert clears only past this value (below it for `above`, above it for `below`). */
  clear: z.number().optional(),
})

/** `metric` outside [min, max], given here or taken from the device's registry entry (`limits`). */
const range = z.strictObject({
  ...common,
  kind: z.literal('range'),
  metric: metricName,
  min: z.number().optional(),
  max: z.number().optional(),
  limitsFrom: z.enum(['rule', 'registry']).default('rule'),
  /** Hysteresis: clears only once the value is this far inside the range. */
  clearMargin: z.number().min(0).default(0),
})

/** Rate of change of `metric` per minute between readings at least `minSpan` apart. */
const rate = z.strictObject({
  ...common,
  kind: z.literal('rate'),
  metric: metricName,
  risePerMinute: z.number().positive().optional(),
  fallPerMinute: z.number().positive().optional(),
  /** Event time a rate is measured over, at least: a reading closer than this to the one the
   * last rate was measured from is not judged (the alert holds), so a sensor's noise between
   * readings a second apart does not read as a steep rate. 0: every pair of consecutive readings. */
  minSpan: duration.default(0),
})

/** No reading from the device for `after` (event time): the device is offline; clears on data. */
const absence = z.strictObject({
  ...common,
  kind: z.literal('absence'),
  after: duration,
})

/** Battery level below a percentage; clears at or above `clear` (default below + 5). */
const battery = z.strictObject({
  ...common,
  kind: z.literal('battery'),
  metric: metricName.default('battery'),
  below: z.number().min(0).max(100),
  clear: z.number().min(0).max(100).optional(),
})

/** A reading far from the device's recent behaviour: z-score over the last `window` readings, or EWMA. */
const anomaly = z.strictObject({
  ...common,
  kind: z.literal('anomaly'),
  metric: metricName,
  method: z.enum(['zscore', 'ewma']).default('zscore'),
  /** zscore: readings in the rolling window; ewma: the smoothing span (alpha = 2 / (span + 1)). */
  window: z.number().int().min(3).max(10_000).default(30),
  /** How many standard deviations away counts as an anomaly. */
  threshold: z.number().positive().default(3),
  /** Readings needed before the rule judges (the baseline). */
  minSamples: z.number().int().min(2).default(10),
})

/** A condition over the reading (CEL): `metrics`, `meta`, `device`, `deviceId`, `tenant`, `ts`. */
const condition = z.strictObject({
  ...common,
  kind: z.literal('condition'),
  when: z.string().min(1),
  /** Hysteresis: a separate clear condition (default: `when` no longer holds). */
  clearWhen: z.string().min(1).optional(),
})

/** One rule, as written in YAML. */
export const ruleSchema = z
  .discriminatedUnion('kind', [threshold, range, rate, absence, battery, anomaly, condition])
  .superRefine((r, ctx) => {
    if (r.kind === 'threshold' && (r.above === undefined) === (r.below === undefined))
      ctx.addIssue({ code: 'custom', message: 'give exactly one of above or below', path: ['above'] })
    if (r.kind === 'threshold' && r.clear !== undefined) {
      const bad = r.above !== undefined ? r.clear > r.above : r.clear < r.below!
      if (bad)
        ctx.addIssue({
          code: 'custom',
          message: 'clear must be on the safe side of the threshold',
          path: ['clear'],
        })
    }
    if (r.kind === 'range' && r.limitsFrom === 'rule' && r.min === undefined && r.max === undefined)
      ctx.addIssue({
        code: 'custom',
        message: 'give min, max or both (or limitsFrom: registry)',
        path: ['min'],
      })
    if (r.kind === 'rate' && r.risePerMinute === undefined && r.fallPerMinute === undefined)
      ctx.addIssue({
        code: 'custom',
        message: 'give risePerMinute, fallPerMinute or both',
        path: ['risePerMinute'],
      })
    if (r.kind === 'battery' && r.clear !== undefined && r.clear < r.below)
      ctx.addIssue({ code: 'custom', message: 'clear must be at or above below', path: ['clear'] })
  })

/** A validated rule. */
export type Rule = z.infer<typeof ruleSchema>
/** A rule file: a list of rules. */
export const ruleFileSchema = z.strictObject({ rules: z.array(ruleSchema) })
