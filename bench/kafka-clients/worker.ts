/**
 * One Kafka client, one phase, one process, so its CPU time is its own:
 *   worker.ts <client> produce|consume <brokers> <topic> <messages-file> <count>
 * Prints one JSON line: {"client","phase","messages","wallS","cpuS"} (cpuS = user+system of
 * this whole process, every thread included: librdkafka's too).
 */
import { readFileSync } from 'node:fs'

type Msg = { key: string; value: Buffer }
type Phase = (brokers: string[], topic: string, msgs: Msg[], count: number) => Promise<number>

const BATCH = 1000

/** Runs `send` over batches of BATCH messages, at most `inFlight` at once. */
async function pool(msgs: Msg[], send: (batch: Msg[]) => Promise<void>, inFlight = 4): Promise<void> {
  const batches: Msg[][] = []
  for (let i = 0; i < msgs.length; i += BATCH) batches.push(msgs.slice(i, i + BATCH))
  let next = 0
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < batches.length) await send(batches[next++]!)
    }),
  )
}

function untilCount(
  count: number,
  onTick: (add: (n: number) => void) => Promise<() => Promise<void>>,
): Promise<number> {
  return new Promise((resolve, reject) => {
    let seen = 0
    let stop: (() => Promise<void>) | undefined
    let done = false
    const add = (n: number) => {
      seen += n
      if (!done && seen >= count) {
        done = true
        void Promise.resolve(stop?.()).then(() => resolve(seen))
      }
    }
    onTick(add).then((s) => (stop = s), reject)
  })
}

const clients: Record<string, { produce: Phase; consume: Phase }> = {
  kafkajs: {
    async produce(brokers, topic, msgs) {
      const { Kafka, Partitioners, logLevel } = await import('kafkajs')
      const kafka = new Kafka({ clientId: 'bench', brokers, logLevel: logLevel.NOTHING })
      // fleetstream's own settings: idempotent, acks=all, one request in flight per broker.
      const p = kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        createPartitioner: Partitioners.DefaultPartitioner,
      })
      await p.connect()
      await pool(msgs, async (b) => {
        await p.sendBatch({ acks: -1, topicMessages: [{ topic, messages: b }] })
      })
      await p.disconnect()
      return msgs.length
    },
    async consume(brokers, topic, _msgs, count) {
      const { Kafka, logLevel } = await import('kafkajs')
      const kafka = new Kafka({ clientId: 'bench', brokers, logLevel: logLevel.NOTHING })
      const c = kafka.consumer({ groupId: `bench-${topic}`, maxBytesPerPartition: 4 << 20 })
      await c.connect()
      await c.subscribe({ topics: [topic], fromBeginning: true })
      return untilCount(count, async (add) => {
        await c.run({ autoCommit: false, eachBatch: async ({ batch }) => add(batch.messages.length) })
        return () => c.disconnect()
      })
    },
  },
  platformatic: {
    async produce(brokers, topic, msgs) {
      const { Producer, ProduceAcks } = await import('@platformatic/kafka')
      const p = new Producer({
        clientId: 'bench',
        bootstrapBrokers: brokers,
        idempotent: true,
        acks: ProduceAcks.ALL,
      })
      // One send at a time: with overlapping sends its idempotent producer (1.35) gets
      // OUT_OF_ORDER_SEQUENCE_NUMBER from the broker and fails the batch.
      await pool(
        msgs,
        async (b) => {
          await p.send({ messages: b.map((m) => ({ topic, key: Buffer.from(m.key), value: m.value })) })
        },
        1,
      )
      await p.close()
      return msgs.length
    },
    async consume(brokers, topic, _msgs, count) {
      const { Consumer } = await import('@platformatic/kafka')
      const c = new Consumer({ clientId: 'bench', groupId: `bench-${topic}`, bootstrapBrokers: brokers })
      return untilCount(count, async (add) => {
        const stream = await c.consume({ topics: [topic], mode: 'earliest', autocommit: false } as never)
        stream.on('data', () => add(1))
        return async () => {
          await stream.close()
          await c.close()
        }
      })
    },
  },
  confluent: {
    async produce(brokers, topic, msgs) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- a peer package, resolved at run time in bench/peers/
      const { KafkaJS } = require(peerPath('@confluentinc/kafka-javascript'))
      const kafka = new KafkaJS.Kafka({ kafkaJS: { brokers, logLevel: KafkaJS.logLevel.NOTHING } })
      const p = kafka.producer({ kafkaJS: { idempotent: true, acks: -1 } })
      await p.connect()
      await pool(msgs, async (b) => {
        await p.send({ topic, messages: b })
      })
      await p.disconnect()
      return msgs.length
    },
    async consume(brokers, topic, _msgs, count) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- a peer package, resolved at run time in bench/peers/
      const { KafkaJS } = require(peerPath('@confluentinc/kafka-javascript'))
      const kafka = new KafkaJS.Kafka({ kafkaJS: { brokers, logLevel: KafkaJS.logLevel.NOTHING } })
      const c = kafka.consumer({
        kafkaJS: { groupId: `bench-${topic}`, fromBeginning: true, autoCommit: false },
      })
      await c.connect()
      await c.subscribe({ topics: [topic] })
      return untilCount(count, async (add) => {
        await c.run({
          eachBatch: async ({ batch }: { batch: { messages: unknown[] } }) => add(batch.messages.length),
        })
        return () => c.disconnect()
      })
    },
  },
}

/** The peer client lives in bench/peers/ with its own node_modules (it builds native code). */
function peerPath(name: string): string {
  return require.resolve(name, { paths: [`${__dirname}/../peers/confluent-kafka`] })
}

async function main(): Promise<void> {
  const [client, phase, brokers, topic, file, countText] = process.argv.slice(2)
  const impl = clients[client!]
  if (!impl || (phase !== 'produce' && phase !== 'consume'))
    throw new Error(`usage: worker.ts <${Object.keys(clients).join('|')}> produce|consume …`)
  const msgs: Msg[] = readFileSync(file!, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const tab = line.indexOf('\t')
      return { key: line.slice(0, tab), value: Buffer.from(line.slice(tab + 1)) }
    })
  const count = Number(countText)
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  const messages = await impl[phase](brokers!.split(','), topic!, msgs, count)
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu = process.cpuUsage(cpu0)
  process.stdout.write(
    `${JSON.stringify({ client, phase, messages, wallS, cpuS: (cpu.user + cpu.system) / 1e6 })}\n`,
  )
  process.exit(0)
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
