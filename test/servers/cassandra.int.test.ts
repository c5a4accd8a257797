import { Client, types } from 'cassandra-driver'
import { serverEnv, uniqueName } from '../servers'

describe('test > servers > cassandra smoke [cassandra]', () => {
  let client: Client
  const keyspace = uniqueName('smoke').toLowerCase()

  beforeAll(async () => {
    client = new Client({
      contactPoints: [serverEnv().FS_CASSANDRA_CONTACT_POINTS],
      localDataCenter: 'datacenter1',
    })
    await client.connect()
  })

  afterAll(async () => {
    await client?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => undefined)
    await client?.shutdown()
  })

  it('runs Cassandra 5.0', async () => {
    const rs = await client.execute('SELECT release_version FROM system.local')
    expect(String(rs.first().get('release_version'))).toMatch(/^5\.0\./)
  })

  it('creates a keyspace, writes and reads back with prepared statements', async () => {
    await client.execute(
      `CREATE KEYSPACE ${keyspace} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`,
    )
    await client.execute(
      `CREATE TABLE ${keyspace}.readings (device_id text, day date, ts timestamp, value double, PRIMARY KEY ((device_id, day), ts))`,
    )
    const insert = `INSERT INTO ${keyspace}.readings (device_id, day, ts, value) VALUES (?, ?, ?, ?)`
    const day = types.LocalDate.fromString('2026-11-26')
    for (let i = 0; i < 10; i++) {
      await client.execute(insert, ['sensor-1', day, new Date(Date.UTC(2026, 10, 26, 0, 0, i)), 20 + i], {
        prepare: true,
      })
    }
    const rs = await client.execute(
      `SELECT ts, value FROM ${keyspace}.readings WHERE device_id = ? AND day = ? ORDER BY ts DESC LIMIT 3`,
      ['sensor-1', day],
      { prepare: true },
    )
    expect(rs.rows.map((r) => r.get('value'))).toEqual([29, 28, 27])
  })
})
