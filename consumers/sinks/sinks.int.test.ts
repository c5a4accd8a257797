import path from 'node:path'
import { Client } from 'cassandra-driver'
import { Pool } from 'pg'
import { LocalSchemaRegistry } from '../../core/envelope/registry'
import type { KafkaEventLog } from '../../core/kafka/kafkajs-log'
import type { OutRecord } from '../../core/kafka/log'
import type { Alert, Device, Rollup, Telemetry } from '../../schemas/types.generated'
import { collect, testKafkaLog, testLogger } from '../../test/kafka'
import { serverEnv, uniqueName } from '../../test/servers'
import { cassandraSink } from './cassandra'
import { sinkCodecs } from './cli'
import { postgresSink } from './postgres'
import { runSink, type SinkCodecs } from './runtime'
import { openSqlite, sqliteSink } from './sqlite'
import type { Sink } from './sink'
import { tempDir } from '../../test/tmp'

/** What a test reads back from a store, the same way for each store. */
interface Opened {
  sink: () => Sink
  telemetryCount: () => Promise<number>
  /** (metric, window ms, window start) → [count, avg]. */
  rollups: (deviceId: string) => Promise<Map<string, [number, number]>>
  alert: (
    deviceId: string,
    alertId: string,
  ) => Promise<{ state: string; severity: string; value: number } | null>
  device: (deviceId: string) => Promise<{ site: string | null; lastSeen: number | null } | null>
  /** A reading that passes Avro but the database refuses, and the error text to expect. */
  poison: (r: Telemetry) => Telemetry
  refusal: RegExp
  drop: () => Promise<void>
}

const postgres = {
  async open(name: string): Promise<Opened> {
    const url = serverEnv().FS_POSTGRES_URL
    const pool = new Pool({ connectionString: url, max: 2, options: `-c search_path=${name}` })
    const one = async (sql: string, params: unknown[]) => (await pool.query(sql, params)).rows[0]
    return {
      sink: () => postgresSink({ connectionString: url, schema: name }),
      telemetryCount: async () => Number((await one('SELECT count(*) AS n FROM telemetry', [])).n),
      rollups: async (d) =>
        new Map(
          (
            await pool.query(
              'SELECT metric, window_ms, window_start, count, avg FROM rollups WHERE device_id = $1',
              [d],
            )
          ).rows.map((r) => [
            `${r.metric}/${r.window_ms}/${(r.window_start as Date).getTime()}`,
            [Number(r.count), r.avg],
          ]),
        ),
      alert: async (_d, id) =>
        one('SELECT state, severity, value FROM alerts WHERE alert_id = $1', [id]) ?? null,
      device: async (d) => {
        const r = await one('SELECT site, last_seen FROM devices WHERE device_id = $1', [d])
        return r ? { site: r.site, lastSeen: r.last_seen ? (r.last_seen as Date).getTime() : null } : null
      },
      poison: (r) => ({ ...r, deviceId: 'bad\u0000device' }), // NUL is not allowed in text
      refusal: /SQLSTATE 22021/,
      drop: async () => {
        await pool.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`)
        await pool.end()
      },
    }
  },
}

const cassandra = {
  async open(name: string): Promise<Opened> {
    const contactPoints = [serverEnv().FS_CASSANDRA_CONTACT_POINTS]
    const options = { contactPoints, localDataCenter: 'datacenter1' }
    const client = new Client(options)
    await client.connect()
    const rows = async (cql: string, params: unknown[]) =>
      (await client.execute(cql, params, { prepare: true })).rows
    return {
      sink: () => cassandraSink({ client: options, keyspace: name, concurrency: 32 }),
      telemetryCount: async () =>
        Number(
          (await client.execute(`SELECT count(*) AS n FROM ${name}.telemetry_by_device_day`))
            .first()
            .get('n'),
        ),
      rollups: async (d) =>
        new Map(
          (
            await rows(
              `SELECT metric, window_ms, window_start, count, avg FROM ${name}.rollups_by_device_day WHERE device_id = ? ALLOW FILTERING`,
              [d],
            )
          ).map((r) => [
            `${r.metric}/${r.window_ms}/${(r.window_start as Date).getTime()}`,
            [Number(r.count), r.avg as number],
          ]),
        ),
      alert: async (d, id) => {
        const r = (
          await rows(
            `SELECT state, severity, value, alert_id FROM ${name}.alerts_by_device WHERE device_id = ?`,
            [d],
          )
        ).find((x) => x.alert_id === id)
        return r ? { state: r.state, severity: r.severity, value: r.value } : null
      },
      device: async (d) => {
        const r = (await rows(`SELECT site, last_seen FROM ${name}.devices WHERE device_id = ?`, [d]))[0]
        return r ? { site: r.site, lastSeen: r.last_seen ? (r.last_seen as Date).getTime() : null } : null
      },
      poison: (r) => ({ ...r, deviceId: '' }), // the sink refuses an empty device id
      refusal: /cassandra: a reading with an empty device id/,
      drop: async () => {
        await client.execute(`DROP KEYSPACE IF EXISTS ${name}`)
        await client.shutdown()
      },
    }
  },
}

const sqlite = {
  async open(name: string): Promise<Opened> {
    const file = path.join(tempDir('fs-sqlite-'), `${name}.db`)
    const db = openSqlite(file)
    const one = (sql: string, params: unknown[]) =>
      db.prepare(sql).get(params) as Record<string, unknown> | undefined
    return {
      sink: () => sqliteSink({ file }),
      telemetryCount: async () => Number(one('SELECT count(*) AS n FROM telemetry', [])!.n),
      rollups: async (d) =>
        new Map(
          (
            db
              .prepare('SELECT metric, window_ms, window_start, count, avg FROM rollups WHERE device_id = ?')
              .all(d) as Record<string, number>[]
          ).map((r) => [`${r.metric}/${r.window_ms}/${r.window_start}`, [r.count!, r.avg!]]),
        ),
      alert: async (_d, id) =>
        (one('SELECT state, severity, value FROM alerts WHERE alert_id = ?', [id]) as never) ?? null,
      device: async (d) => {
        const r = one('SELECT site, last_seen FROM devices WHERE device_id = ?', [d])
        return r
          ? { site: (r.site as string | null) ?? null, lastSeen: (r.last_seen as number | null) ?? null }
          : null
      },
      poison: (r) => ({ ...r, deviceId: '' }), // every SQL store refuses an empty device id
      refusal: /sqlite: a reading with an empty device id/,
      drop: async () => void db.close(),
    }
  },
}

const T = Date.UTC(2026, 10, 1, 23, 59) // crosses midnight: two day partitions per device
const reading = (d: number, i: number): Telemetry => ({
  deviceId: `dev-${d}`,
  tenant: 'acme',
  ts: T + i * 1000,
  receivedAt: T + i * 1000 + 5,
  seq: i,
  metrics: { temperature: 20 + (i % 10), ok: true, state: 'run' },
  meta: { fw: '1.2' },
  source: 'mqtt',
})
const rollup = (
  deviceId: string,
  windowStart: number,
  count: number,
  avg: number,
  kind: Rollup['kind'],
): Rollup => ({
  deviceId,
  metric: 'temperature',
  windowStart,
  windowEnd: windowStart + 60_000,
  count,
  min: avg,
  max: avg,
  sum: avg * count,
  avg,
  first: avg,
  last: avg,
  kind,
})
const alert = (event: Alert['event'], ts: number, severity: Alert['severity'], value: number): Alert => ({
  alertId: 'a-1',
  event,
  ruleId: 'hot',
  ruleName: 'Too hot',
  deviceId: 'dev-1',
  tenant: 'acme',
  severity,
  ts,
  raisedAt: T,
  metric: 'temperature',
  value,
  message: `${event} at ${value}`,
})
const device = (deviceId: string, site: string): Device => ({
  deviceId,
  tenant: 'acme',
  site,
  model: 'th-1',
  tags: { floor: '2' },
  limits: { temperature: { min: 0, max: 40 } },
})

describe.each([
  ['postgres [kafka] [postgres]', postgres, 50],
  ['cassandra [kafka] [cassandra]', cassandra, 20],
  ['sqlite, the embedded store [kafka]', sqlite, 50],
])('consumers > sinks > %s', (_title, store, perDevice) => {
  let log: KafkaEventLog
  let codecs: SinkCodecs
  beforeAll(async () => {
    log = testKafkaLog()
    codecs = await sinkCodecs(new LocalSchemaRegistry())
  })
  afterAll(async () => {
    await log?.close()
  })

  it('stores telemetry, rollups, alerts and devices once: exact rows, a replay changes nothing, a refused record is dead-lettered and the rest written', async () => {
    const id = uniqueName('sink')
    const name = id
      .toLowerCase()
      .replace(/[^a-z0-9_]/g, '_')
      .slice(0, 40)
    const topics = {
      telemetry: `${id}.telemetry`,
      rollups: `${id}.rollups`,
      alerts: `${id}.alerts`,
      devices: `${id}.devices`,
    }
    const dlq = `${id}.dlq`
    const admin = await log.admin()
    await admin.ensureTopics([
      ...Object.values(topics).map((t) => ({ name: t, partitions: 3, replicationFactor: 1 })),
      { name: dlq, partitions: 1, replicationFactor: 1 },
    ])
    await admin.close()
    const db = await store.open(name)
    const readings = Array.from({ length: 100 }, (_, d) =>
      Array.from({ length: perDevice }, (_, i) => reading(d, i)),
    ).flat()
    const half = readings.length / 2
    const t = (topic: string, key: string, value: Buffer | null): OutRecord => ({ topic, key, value })
    const producer = await log.producer()
    await producer.send([
      ...readings.slice(0, half).map((r) => t(topics.telemetry, r.deviceId, codecs.telemetry.encode(r))),
      t(topics.telemetry, 'dev-7', codecs.telemetry.encode(db.poison(reading(7, 999)))),
      t(topics.telemetry, 'dev-8', Buffer.from('not an envelope')),
      ...readings.slice(half).map((r) => t(topics.telemetry, r.deviceId, codecs.telemetry.encode(r))),
      // A window, its late correction, a second window and a merged-away (retracted) one.
      ...[
        rollup('dev-1', T, 3, 20, 'final'),
        rollup('dev-1', T, 4, 21, 'update'),
        rollup('dev-1', T + 60_000, 2, 30, 'final'),
        rollup('dev-1', T + 120_000, 1, 40, 'final'),
        rollup('dev-1', T + 120_000, 1, 40, 'retract'),
      ].map((r) => t(topics.rollups, r.deviceId, codecs.rollup.encode(r))),
      // A rollup cut short: framed with the current schema id, so the fast path (SQLite) tries it first.
      t(topics.rollups, 'dev-9', codecs.rollup.encode(rollup('dev-9', T, 1, 1, 'final')).subarray(0, 12)),
      ...[
        alert('raised', T, 'warning', 41),
        alert('updated', T + 1000, 'critical', 45),
        alert('cleared', T + 5000, 'critical', 35),
      ].map((a) => t(topics.alerts, a.deviceId, codecs.alert.encode(a))),
      ...['dev-1', 'dev-2', 'dev-500'].map((d) =>
        t(topics.devices, d, codecs.device.encode(device(d, 'plant-a'))),
      ),
      t(topics.devices, 'dev-1', codecs.device.encode(device('dev-1', 'plant-b'))),
      t(topics.devices, 'dev-500', null), // removed from the registry
    ])
    await producer.close()
    const run = async () => {
      const s = await runSink(log, db.sink(), {
        groupId: uniqueName('sink'),
        inputs: Object.entries(topics).map(([kind, topic]) => ({ topic, kind: kind as 'telemetry' })),
        deadletterTopic: dlq,
        codecs,
        retry: { maxAttempts: 3, initialBackoffMs: 10, maxBackoffMs: 50 },
        logger: testLogger('sinks'),
      })
      // Until everything is in (or 60 s), then a second more for anything extra to show.
      for (
        let i = 0;
        i < 600 &&
        !(await check().then(
          () => true,
          () => false,
        ));
        i++
      )
        await new Promise((r) => setTimeout(r, 100))
      await new Promise((r) => setTimeout(r, 1_000))
      await s.close()
    }
    const check = async () => {
      expect(await db.telemetryCount()).toBe(readings.length)
      expect(await db.rollups('dev-1')).toEqual(
        new Map([
          [`temperature/60000/${T}`, [4, 21]],
          [`temperature/60000/${T + 60_000}`, [2, 30]],
        ]),
      )
      expect(await db.alert('dev-1', 'a-1')).toEqual({ state: 'cleared', severity: 'critical', value: 35 })
      expect(await db.device('dev-1')).toEqual({ site: 'plant-b', lastSeen: T + (perDevice - 1) * 1000 })
      expect(await db.device('dev-2')).toMatchObject({ site: 'plant-a' })
      expect(await db.device('dev-500')).toBeNull()
    }
    try {
      await run()
      await check()
      const dead = await collect(log, { groupId: uniqueName('dlq'), topics: [dlq] }, (rs) => rs.length >= 3)
      expect(
        dead.map((r) => `${r.headers['fs-reason-code']!.toString()} ${r.key?.toString()}`).sort(),
      ).toEqual(['FS_SINK_DECODE dev-8', 'FS_SINK_DECODE dev-9', 'FS_SINK_WRITE dev-7'])
      const refused = dead.find((r) => r.headers['fs-reason-code']!.toString() === 'FS_SINK_WRITE')!
      expect(refused.headers['fs-reason']!.toString()).toMatch(db.refusal)
      // Every topic again through a new group (a replay): same rows, same state.
      await run()
      await check()
    } finally {
      await db.drop()
    }
  })
})
