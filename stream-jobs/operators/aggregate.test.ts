import fc from 'fast-check'
import { addTo, aggregateOf, combine } from './aggregate'

describe('stream-jobs > operators > aggregate', () => {
  it('addTo (in place) equals combine with a one-reading aggregate, ties included', () => {
    const reading = fc.record({ value: fc.integer({ min: -5, max: 5 }), ts: fc.integer({ min: 0, max: 4 }) })
    fc.assert(
      fc.property(reading, fc.array(reading, { minLength: 1, maxLength: 20 }), (first, rest) => {
        let pure = aggregateOf(first.value, first.ts)
        const inPlace = aggregateOf(first.value, first.ts)
        for (const r of rest) {
          pure = combine(pure, aggregateOf(r.value, r.ts))
          addTo(inPlace, r.value, r.ts)
        }
        expect(inPlace).toEqual(pure)
      }),
      { numRuns: 300 },
    )
  })
})
