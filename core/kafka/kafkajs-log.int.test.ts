import { topicsConfig } from '../config/schema'
import { LocalSchemaRegistry } from '../envelope/registry'
import { createTelemetryCodec, type Telemetry } from '../envelope/telemetry'
import { collect, testKafkaLog, within } from '../../test/kafka'
import { uniqueName } from '../../test/servers'
import type { KafkaEventLog } from './kafkajs-log'
import type { Consumer, LogAdmin, OutRecord, RecordMeta } from './log'
import { partitionForKey } from './murmur2'
import { designTopics } from './topics'

const PARTITIONS = 6

describe('core > kafka > kafkajs event log [kafka]', () => {
  let log: KafkaEventLog
  let admin: LogAdmin

  beforeAll(async () => {
    log = testKafkaLog()
    admin = await log.admin()
  })

  afterAll(async () => {
    await admin?.close()
    await log?.close()
  })

  async function newTopic(prefix: string, partitions = PARTITIONS): Promise<string> {
    const name = uniqueName(prefix)
    await admin.ensureTopics([{ name, partitions, replicationFactor: 1 }])
    return name
  }

  it("creates the design's topics once, compacted where the design says", async () => {
    const prefix = uniqueName('design')
    const cfg = topicsConfig.parse({
      raw: `${prefix}.raw`,
      devices: `${prefix}.devices`,
      enriched: `${prefix}.enriched`,
      late: `${prefix}.late`,
      rollups1m: `${prefix}.r1m`,
      rollups1h: `${prefix}.r1h`,
      rules: `${prefix}.rules`,
      alerts: `${prefix}.alerts`,
      deadletter: `${prefix}.dlq`,
      partitions: 3,
    })
    const specs = designTopics(cfg)
    expect((await admin.ensureTopics(specs)).sort()).toEqual(specs.map((s) => s.name).sort())
    expect(await admin.ensureTopics(specs)).toEqual([])
    for (const s of specs) expect(await admin.partitionCount(s.name)).toBe(3)

    const raw = log.kafka.admin()
    await raw.connect()
    try {
      const described = await raw.describeConfigs({
        includeSynonyms: false,
        resources: specs.map((s) => ({ type: 2 /* TOPIC */, name: s.name, configNames: ['cleanup.policy'] })),
      })
      const policy = new Map(
        described.resources.map((r) => [r.resourceName, r.configEntries[0]?.configValue]),
      )
      expect(policy.get(cfg.devices)).toBe('compact')
      expect(policy.get(cfg.rules)).toBe('compact')
      expect(policy.get(cfg.raw)).toBe('delete')
      expect(policy.get(cfg.alerts)).toBe('delete')
    } finally {
      await raw.disconnect()
    }
  })

  it('carries 10,000 envelopes from 100 devices: exact count, per-device order, murmur2 partitions', async () => {
    const topic = await newTopic('telemetry')
    const codec = await createTelemetryCodec(new LocalSchemaRegistry())
    const devices = Array.from({ length: 100 }, (_, i) => `device-${String(i).padStart(3, '0')}`)
    const perDevice = 100
    const producer = await log.producer()
    const metas: RecordMeta[] = []
    const sent: OutRecord[] = []
    try {
      // Interleave devices, 500 records per send, as a bridge would batch them.
      for (let seq = 0; seq < perDevice; seq += 5) {
        const batch: OutRecord[] = []
        for (let s = seq; s < seq + 5; s++) {
          for (const deviceId of devices) {
            const env: Telemetry = {
              deviceId,
              tenant: 'acme',
              ts: 1_764_000_000_000 + s * 1000,
              receivedAt: 1_764_000_000_500 + s * 1000,
              seq: s,
              metrics: { temperature: 20 + (s % 7), ok: s % 2 === 0 },
              meta: { fw_ver: '1.0' },
              source: 'mqtt',
            }
            batch.push({ topic, key: deviceId, value: codec.encode(env) })
          }
        }
        sent.push(...batch)
        metas.push(...(await producer.send(batch)))
      }
    } finally {
      await producer.close()
    }
    expect(metas).toHaveLength(10_000)
    // The producer put each record where murmur2 says, and reported distinct offsets.
    sent.forEach((r, i) => expect(metas[i]!.partition).toBe(partitionForKey(r.key!, PARTITIONS)))
    expect(new Set(metas.map((m) => `${m.partition}:${m.offset}`)).size).toBe(10_000)
    const ends = await admin.endOffsets(topic)
    expect([...ends.values()].reduce((a, b) => a + Number(b), 0)).toBe(10_000)

    const got = await collect(log, { groupId: uniqueName('g'), topics: [topic] }, (r) => r.length >= 10_000)
    expect(got).toHaveLength(10_000)

    const lastSeq = new Map<string, number>()
    const keys = new Set<string>()
    for (const r of got) {
      const env = await codec.decode(r.value!)
      expect(r.key).toBe(env.deviceId)
      expect(r.partition).toBe(partitionForKey(env.deviceId, PARTITIONS))
      // Order per device is kept: sequence numbers arrive strictly increasing.
      expect(env.seq!).toBeGreaterThan(lastSeq.get(env.deviceId) ?? -1)
      lastSeq.set(env.deviceId, env.seq!)
      keys.add(`${env.deviceId}/${env.seq}`)
    }
    expect(keys.size).toBe(10_000)
    expect(lastSeq.size).toBe(100)
    for (const s of lastSeq.values()) expect(s).toBe(perDevice - 1)
  })

  it('hides an aborted transaction from a read_committed consumer', async () => {
    const topic = await newTopic('tx', 3)
    const tp = await log.transactionalProducer(uniqueName('txid'))
    const rec = (kind: string, i: number): OutRecord => ({
      topic,
      key: `dev-${i % 10}`,
      value: Buffer.from(`${kind}-${i}`),
    })
    try {
      const aborted = await tp.begin()
      await aborted.send(Array.from({ length: 40 }, (_, i) => rec('aborted', i)))
      await aborted.send(Array.from({ length: 10 }, (_, i) => rec('aborted', 40 + i)))
      await aborted.abort()
      const committed = await tp.begin()
      await committed.send(Array.from({ length: 30 }, (_, i) => rec('committed', i)))
      await committed.commit()
    } finally {
      await tp.close()
    }
    const producer = await log.producer()
    // One end marker on each partition, so the readers below stop only once every partition is read.
    await producer.send(
      Array.from({ length: 3 }, (_, p) => ({ topic, key: null, value: Buffer.from('end'), partition: p })),
    )
    await producer.close()

    // Wait until the end marker of every partition, so anything visible has been seen.
    const ends = (rs: { value: Buffer | null }[]) =>
      rs.filter((r) => r.value?.toString() === 'end').length >= 3
    const committedView = await collect(log, { groupId: uniqueName('rc'), topics: [topic] }, ends)
    const values = committedView.map((r) => r.value!.toString()).filter((v) => v !== 'end')
    expect(values.filter((v) => v.startsWith('aborted'))).toEqual([])
    expect(values.filter((v) => v.startsWith('committed')).sort()).toEqual(
      Array.from({ length: 30 }, (_, i) => `committed-${i}`).sort(),
    )

    // The aborted records were really written: an uncommitted reader sees them.
    const dirty = await collect(
      log,
      { groupId: uniqueName('ru'), topics: [topic], readCommitted: false },
      ends,
    )
    expect(dirty.filter((r) => r.value!.toString().startsWith('aborted'))).toHaveLength(50)
  })

  it('commits consumer offsets inside a transaction (consume → produce → sendOffsets)', async () => {
    const input = await newTopic('in', 2)
    const output = await newTopic('out', 2)
    const groupId = uniqueName('xform')
    const producer = await log.producer()
    await producer.send(
      Array.from({ length: 100 }, (_, i) => ({
        topic: input,
        key: `d${i % 7}`,
        value: Buffer.from(String(i)),
      })),
    )
    await producer.close()

    const tp = await log.transactionalProducer(uniqueName('xform-tx'))
    const consumer = await log.consumer({ groupId, topics: [input], fromBeginning: true })
    let processed = 0
    let finish!: () => void
    const finished = new Promise<void>((r) => (finish = r))
    await consumer.run(async (batch) => {
      const tx = await tp.begin()
      await tx.send(
        batch.records.map((r) => ({
          topic: output,
          key: r.key,
          value: Buffer.from(String(Number(r.value!.toString()) * 2)),
        })),
      )
      const last = batch.records[batch.records.length - 1]!
      await tx.sendOffsets(groupId, [
        { topic: batch.topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() },
      ])
      await tx.commit()
      processed += batch.records.length
      if (processed >= 100) finish()
    })
    await within(finished, 60_000)
    await consumer.close()
    await tp.close()
    expect(processed).toBe(100)

    const raw = log.kafka.admin()
    await raw.connect()
    try {
      const [committed] = await raw.fetchOffsets({ groupId, topics: [input] })
      const ends = await admin.endOffsets(input)
      for (const p of committed!.partitions) expect(p.offset).toBe(ends.get(p.partition))
    } finally {
      await raw.disconnect()
    }
    const out = await collect(log, { groupId: uniqueName('check'), topics: [output] }, (r) => r.length >= 100)
    expect(out.map((r) => Number(r.value!.toString())).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 100 }, (_, i) => i * 2),
    )
  })

  it('gives partition p of every topic to the same member, whatever the number of members', async () => {
    // 6 partitions and 4 members: kafkajs's round robin would give partition 0 of one topic
    // to one member and partition 0 of the other to another.
    const table = await newTopic('copart-table', 6)
    const stream = await newTopic('copart-stream', 6)
    const groupId = uniqueName('copart')
    const members: Consumer[] = []
    try {
      for (let i = 0; i < 4; i++) {
        const c = await log.consumer({ groupId, topics: [table, stream], fromBeginning: true })
        await c.run(async () => undefined)
        members.push(c)
      }
      // Settled: every member in the same generation, the 12 partitions all handed out.
      const settled = () => {
        const gens = new Set(members.map((c) => c.member()?.generationId))
        const total = members.reduce((n, c) => n + [...c.assignment().values()].flat().length, 0)
        return gens.size === 1 && !gens.has(undefined) && total === 12
      }
      const end = Date.now() + 60_000
      while (!settled()) {
        if (Date.now() > end) throw new Error('the group did not settle within 60 s')
        await new Promise((r) => setTimeout(r, 100))
      }
      for (const c of members) {
        const a = c.assignment()
        expect([...(a.get(stream) ?? [])].sort()).toEqual([...(a.get(table) ?? [])].sort())
      }
    } finally {
      for (const c of members) await c.close()
    }
  })

  it("refuses a transaction's offsets consumed under a generation the group has moved on from (KIP-447)", async () => {
    const topic = await newTopic('fence', 2)
    const out = await newTopic('fence-out', 1)
    const groupId = uniqueName('fence')
    const poll = async (what: string, ok: () => boolean) => {
      const end = Date.now() + 30_000
      while (!ok()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
        await new Promise((r) => setTimeout(r, 50))
      }
    }
    const first = await log.consumer({ groupId, topics: [topic], fromBeginning: true })
    await first.run(async () => undefined)
    await poll('the first member to join', () => first.member() !== undefined)
    const before = first.member()!
    // A second member joins: the group rebalances into a new generation.
    const second = await log.consumer({ groupId, topics: [topic], fromBeginning: true })
    await second.run(async () => undefined)
    await poll('the rebalance', () => (first.member()?.generationId ?? 0) > before.generationId)
    const tp = await log.transactionalProducer(uniqueName('fence-tx'))
    try {
      const offsets = [{ topic, partition: 0, offset: '1' }]
      const record = (value: string) => ({ topic: out, key: 'k', value: Buffer.from(value) })
      // As a member paused past the rebalance would commit: refused, so the transaction aborts.
      // (Records first, as a job does: kafkajs retries the send while the previous transaction
      // completes; an AddOffsetsToTxn sent right after an abort may find it still completing.)
      const stale = await tp.begin()
      await stale.send([record('stale')])
      await expect(stale.sendOffsets(groupId, offsets, before)).rejects.toThrow(/generation/i)
      await stale.abort()
      // Under the current generation the same offsets go through.
      const current = await tp.begin()
      await current.send([record('current')])
      await current.sendOffsets(groupId, offsets, first.member())
      await current.commit()
      // What the aborted transaction wrote stays invisible; the committed one's record is read.
      const seen = await collect(
        log,
        { groupId: uniqueName('fence-read'), topics: [out] },
        (r) => r.length >= 1,
      )
      expect(seen.map((r) => r.value!.toString())).toEqual(['current'])
    } finally {
      await tp.close()
      await second.close()
      await first.close()
    }
  })

  it('resumes a group from its manually committed offset, and nothing is committed without asking', async () => {
    const topic = await newTopic('commits', 1)
    const groupId = uniqueName('manual')
    const producer = await log.producer()
    await producer.send(
      Array.from({ length: 20 }, (_, i) => ({ topic, key: 'k', value: Buffer.from(String(i)) })),
    )
    await producer.close()

    // First consumer reads everything but commits only up to offset 12.
    const first = await log.consumer({ groupId, topics: [topic], fromBeginning: true })
    let seen = 0
    let finish!: () => void
    const finished = new Promise<void>((r) => (finish = r))
    await first.run(async (batch, ctx) => {
      seen += batch.records.length
      if (seen >= 20) {
        await ctx.commit([{ topic, partition: 0, offset: '12' }])
        finish()
      }
    })
    await within(finished, 60_000)
    await first.close()

    const rest = await collect(log, { groupId, topics: [topic] }, (r) => r.length >= 8, 20_000)
    expect(rest.map((r) => r.value!.toString())).toEqual(['12', '13', '14', '15', '16', '17', '18', '19'])
  })

  it('fails a produce to a topic that does not exist with a clear error, not a hang', async () => {
    const producer = await log.producer()
    try {
      await expect(
        producer.send([{ topic: uniqueName('missing'), key: 'd', value: Buffer.from('x') }]),
      ).rejects.toThrow(
        /topic .* (has no partitions|does not exist)|This server does not host this topic-partition/,
      )
    } finally {
      await producer.close()
    }
  })

  it('sends more than the broker takes in one batch (3 MiB to one partition, in a transaction) in order, timestamps kept', async () => {
    const topic = await newTopic('big', 1)
    const tp = await log.transactionalProducer(uniqueName('big-tx'))
    const value = Buffer.alloc(1_000, 7)
    const records: OutRecord[] = Array.from({ length: 3_000 }, (_, i) => ({
      topic,
      key: `k${i}`,
      value: Buffer.concat([Buffer.from(`${i}:`), value]),
      partition: 0,
      // Out of order, and of different digit counts (the batch's first/max timestamps must be numeric).
      timestamp: i % 2 ? 1_700_000_000_000 + ((i * 7919) % 3000) : 999_999_999_999 - i,
    }))
    try {
      const tx = await tp.begin()
      await tx.send(records)
      await tx.commit()
      const got = await collect(
        log,
        { groupId: uniqueName('big-read'), topics: [topic] },
        (r) => r.length >= 3_000,
      )
      expect(got.map((r) => r.key)).toEqual(records.map((r) => r.key))
      expect(got.map((r) => Number(r.offset))).toEqual(records.map((_, i) => i))
      expect(got.map((r) => r.timestamp)).toEqual(records.map((r) => r.timestamp))
    } finally {
      await tp.close()
    }
  })
})
