import type { EventLog, InRecord, OutRecord } from '../core/kafka/log'
import { partitionForKey } from '../core/kafka/murmur2'
import { uniqueName } from './servers'

/**
 * The event-log contract, one suite for both transports (Kafka and the embedded log): what
 * role code relies on. `make` gives a log; topics are made unique per test.
 */
export function eventLogContract(make: () => EventLog): void {
  let log: EventLog
  beforeAll(() => {
    log = make()
  })
  afterAll(async () => {
    await log?.close()
  })

  const topic = async (partitions = 3) => {
    const name = uniqueName('contract')
    const admin = await log.admin()
    await admin.ensureTopics([{ name, partitions, replicationFactor: 1 }])
    await admin.close()
    return name
  }
  const rec = (t: string, key: string, i: number): OutRecord => ({
    topic: t,
    key,
    value: Buffer.from(`${key}:${i}`),
    headers: { n: String(i) },
  })
  /** Consumes until `n` records arrived (or 20 s), committing after each batch; closes. */
  const consume = async (groupId: string, topics: string[], n: number, fail?: (r: InRecord) => boolean) => {
    const got: InRecord[] = []
    const c = await log.consumer({ groupId, topics, fromBeginning: true })
    let resolve!: () => void
    const done = new Promise<void>((r) => (resolve = r))
    await c.run(async (batch, ctx) => {
      for (const r of batch.records) if (fail?.(r)) throw new Error('handler failure')
      got.push(...batch.records)
      const last = batch.records[batch.records.length - 1]!
      await ctx.commit([
        { topic: batch.topic, partition: batch.partition, offset: String(Number(last.offset) + 1) },
      ])
      if (got.length >= n) resolve()
    })
    let timer: NodeJS.Timeout | undefined
    await Promise.race([done, new Promise((r) => (timer = setTimeout(r, 20_000)))])
    clearTimeout(timer)
    await c.close()
    return got
  }

  it('partitions by murmur2 of the key and keeps each key in order; send resolves with offsets', async () => {
    const t = await topic(4)
    const p = await log.producer()
    const records = Array.from({ length: 200 }, (_, i) => rec(t, `dev-${i % 13}`, i))
    const metas = await p.send(records)
    await p.close()
    metas.forEach((m, i) => expect(m.partition).toBe(partitionForKey(records[i]!.key!, 4)))
    const got = await consume(uniqueName('g'), [t], 200)
    expect(got).toHaveLength(200)
    for (let k = 0; k < 13; k++) {
      const mine = got.filter((r) => r.key === `dev-${k}`).map((r) => Number(r.headers.n!.toString()))
      expect(mine).toEqual([...mine].sort((a, b) => a - b))
      expect(mine.length).toBe(records.filter((r) => r.key === `dev-${k}`).length)
    }
  })

  it('a group resumes from its committed offsets; a failed batch comes again', async () => {
    const t = await topic(2)
    const p = await log.producer()
    await p.send(Array.from({ length: 50 }, (_, i) => rec(t, `k${i % 5}`, i)))
    const g = uniqueName('g')
    let attempts = 0 // deliveries of record 7: the first two fail
    const first = await consume(g, [t], 50, (r) => r.headers.n!.toString() === '7' && ++attempts <= 2)
    expect(attempts).toBe(3)
    expect(new Set(first.map((r) => `${r.partition}/${r.offset}`)).size).toBe(50)
    await p.send(Array.from({ length: 10 }, (_, i) => rec(t, `k${i % 5}`, 100 + i)))
    await p.close()
    const second = await consume(g, [t], 10)
    expect(second.map((r) => Number(r.headers.n!.toString())).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 10 }, (_, i) => 100 + i),
    )
    const admin = await log.admin()
    const committed = await admin.committedOffsets(g, t)
    const ends = await admin.endOffsets(t)
    await admin.close()
    expect(committed).toEqual(ends)
  })

  it('transactions: committed records and offsets appear together, aborted ones never', async () => {
    const t = await topic(2)
    const out = await topic(2)
    const p = await log.producer()
    await p.send([rec(t, 'a', 1)])
    await p.close()
    const tp = await log.transactionalProducer(uniqueName('tx'))
    const aborted = await tp.begin()
    await aborted.send([rec(out, 'x', 1)])
    await aborted.abort()
    const tx = await tp.begin()
    await tx.send([rec(out, 'y', 2), rec(out, 'z', 3)])
    const g = uniqueName('g')
    await tx.sendOffsets(g, [{ topic: t, partition: partitionForKey('a', 2), offset: '1' }])
    await tx.commit()
    await tp.close()
    const got = await consume(uniqueName('g'), [out], 2)
    expect(got.map((r) => r.key).sort()).toEqual(['y', 'z'])
    const admin = await log.admin()
    expect((await admin.committedOffsets(g, t)).get(partitionForKey('a', 2))).toBe('1')
    await admin.close()
  })

  it('members of one group split the partitions; every record reaches exactly one member', async () => {
    const t = await topic(4)
    const g = uniqueName('g')
    const seen: string[][] = [[], []]
    const consumers = await Promise.all(
      [0, 1].map(async (i) => {
        const c = await log.consumer({ groupId: g, topics: [t], fromBeginning: true })
        await c.run(async (batch, ctx) => {
          seen[i]!.push(...batch.records.map((r) => `${r.partition}/${r.offset}`))
          const last = batch.records[batch.records.length - 1]!
          await ctx.commit([
            { topic: t, partition: batch.partition, offset: String(Number(last.offset) + 1) },
          ])
        })
        return c
      }),
    )
    // Both members in the group before the records arrive.
    for (let i = 0; i < 200 && consumers.some((c) => [...c.assignment().values()].flat().length !== 2); i++)
      await new Promise((r) => setTimeout(r, 100))
    const p = await log.producer()
    await p.send(Array.from({ length: 400 }, (_, i) => rec(t, `d${i}`, i)))
    await p.close()
    for (let i = 0; i < 200 && seen[0]!.length + seen[1]!.length < 400; i++)
      await new Promise((r) => setTimeout(r, 100))
    await Promise.all(consumers.map((c) => c.close()))
    expect(seen[0]!.length).toBeGreaterThan(0)
    expect(seen[1]!.length).toBeGreaterThan(0)
    expect(new Set([...seen[0]!, ...seen[1]!]).size).toBe(400)
    expect(seen[0]!.length + seen[1]!.length).toBe(400)
  })

  it('readTopic reads every partition to its current end', async () => {
    const t = await topic(3)
    const p = await log.producer()
    await p.send(Array.from({ length: 30 }, (_, i) => rec(t, `r${i}`, i)))
    await p.close()
    const got: InRecord[] = []
    await log.readTopic(t, (r) => got.push(r))
    expect(got.map((r) => Number(r.headers.n!.toString())).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 30 }, (_, i) => i),
    )
  })
}
