import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

// patches/kafkajs+2.2.4.patch (applied by `npm ci` through patch-package) removes two costs
// the stream-jobs benchmark profile showed in kafkajs's produce path: a quadratic grouping of a
// send's messages by partition, and a string sort of every batch's timestamps.
describe('core > kafka > kafkajs patches', () => {
  // kafkajs's internals are not in its typings: loaded by path.
  const req = createRequire(__filename)
  const load = (rel: string) => req(`kafkajs/src/${rel}`) as unknown
  const source = (rel: string) => readFileSync(req.resolve(`kafkajs/src/${rel}`), 'utf8')

  it('are applied to the installed kafkajs', () => {
    expect(source('producer/groupMessagesPerPartition.js')).toContain('fleetstream patch')
    expect(source('protocol/requests/produce/v3/request.js')).toContain('fleetstream patch')
  })

  it('group messages by partition in their order, as before', () => {
    const group = load('producer/groupMessagesPerPartition.js') as (a: {
      topic: string
      partitionMetadata: unknown[]
      messages: { key: string; partition: number }[]
      partitioner: (x: { message: { partition: number } }) => number
    }) => Record<number, { key: string }[]>
    const messages = Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, partition: i % 3 }))
    const got = group({
      topic: 't',
      partitionMetadata: [{}, {}, {}],
      messages,
      partitioner: ({ message }) => message.partition,
    })
    expect(Object.fromEntries(Object.entries(got).map(([p, ms]) => [p, ms.map((m) => m.key)]))).toEqual({
      0: ['k0', 'k3', 'k6', 'k9'],
      1: ['k1', 'k4', 'k7'],
      2: ['k2', 'k5', 'k8'],
    })
    expect(group({ topic: 't', partitionMetadata: [], messages, partitioner: () => 0 })).toEqual({})
  })
})
