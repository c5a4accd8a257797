import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import Database from 'better-sqlite3'
import { createDeviceStore } from '../bridge/auth'
import { bridgeRoleConfig } from '../bridge/config'
import { metricValue } from '../test/bridge-process'
import { startUp, type Up } from '../test/up-process'
import { simulate } from './simulate'

// `fleetstream up` + the simulator with every fault on: what the simulator says was
// acknowledged is what the store holds, and what it says was refused is what the bridge counted.
describe('simulator > 500 devices with faults against fleetstream up', () => {
  let up: Up
  afterAll(async () => {
    await up?.close()
  })

  it("acknowledged readings equal the store's rows; refusals match the bridge's counts", async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'fs-sim-'))
    up = await startUp(dataDir)
    const cfg = bridgeRoleConfig.parse({ bridge: { auth: { file: path.join(dataDir, 'devices.json') } } })
    const store = createDeviceStore(cfg.bridge.auth)
    const devices: { deviceId: string; token: string }[] = []
    for (let i = 0; i < 500; i += 10)
      devices.push(...(await Promise.all(Array.from({ length: 10 }, (_, k) => store.add(`sim-${i + k}`)))))
    await store.close()

    const summary = await simulate({
      devices,
      transport: 'http',
      httpUrl: `http://127.0.0.1:${up.listening.http}`,
      mqttUrl: `mqtt://127.0.0.1:${up.listening.mqtt}`,
      readings: 12,
      intervalMs: 5000,
      batch: 4,
      concurrency: 50,
      faults: { outOfOrder: 0.05, late: 0.05, offline: 0.1, skew: 0.1, bad: 0.02 },
      lateMs: 120_000,
      skewMs: 30_000,
      seed: 7,
    })
    // Every fault happened, and every reading got an answer.
    expect(summary.offlineDevices).toBeGreaterThan(0)
    expect(summary.faults.bad).toBeGreaterThan(0)
    expect(summary.faults.late).toBeGreaterThan(0)
    expect(summary.faults.outOfOrder).toBeGreaterThan(0)
    expect(summary.unanswered).toBe(0)
    expect(summary.acknowledged + summary.rejected.FS_BRIDGE_DECODE!).toBe(summary.sent)
    expect(summary.rejected).toEqual({ FS_BRIDGE_DECODE: summary.faults.bad })

    const db = new Database(path.join(dataDir, 'fleetstream.db'), { readonly: true, fileMustExist: true })
    const rows = () =>
      Number(
        (
          db.prepare("SELECT count(*) AS n FROM telemetry WHERE device_id LIKE 'sim-%'").get() as {
            n: number
          }
        ).n,
      )
    for (let i = 0; i < 300 && rows() < summary.acknowledged; i++)
      await new Promise((r) => setTimeout(r, 100))
    await new Promise((r) => setTimeout(r, 500))
    expect(rows()).toBe(summary.acknowledged)
    db.close()

    const metrics = await (await fetch(`http://127.0.0.1:${up.listening.http}/metrics`)).text()
    expect(metricValue(metrics, 'fleetstream_bridge_rejected_total', { reason: 'FS_BRIDGE_DECODE' })).toBe(
      summary.faults.bad,
    )
    expect(metricValue(metrics, 'fleetstream_bridge_deadletter_total')).toBeGreaterThanOrEqual(
      summary.faults.bad,
    )
  }, 180_000)
})

describe('simulator > fleetstream up killed mid-stream', () => {
  let up: Up | undefined
  afterAll(async () => {
    await up?.close()
  })

  it('loses nothing it acknowledged: after kill -9 and a restart every acknowledged reading is stored', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'fs-sim-kill-'))
    up = await startUp(dataDir)
    const cfg = bridgeRoleConfig.parse({ bridge: { auth: { file: path.join(dataDir, 'devices.json') } } })
    const store = createDeviceStore(cfg.bridge.auth)
    const devices = await Promise.all(Array.from({ length: 40 }, (_, i) => store.add(`kill-${i}`)))
    await store.close()
    const running = simulate({
      devices,
      transport: 'mqtt',
      httpUrl: '',
      mqttUrl: `mqtt://127.0.0.1:${up.listening.mqtt}`,
      readings: 400,
      intervalMs: 1000,
      batch: 1,
      concurrency: 40,
      faults: { outOfOrder: 0, late: 0, offline: 0, skew: 0, bad: 0 },
      lateMs: 0,
      skewMs: 0,
      onProgress: (done) => {
        if (done >= 3000 && up && !killed) {
          killed = true
          void up.kill()
        }
      },
    })
    let killed = false
    const summary = await running
    expect(killed).toBe(true)
    expect(summary.acknowledged).toBeGreaterThanOrEqual(3000)
    expect(summary.acknowledged).toBeLessThan(summary.sent)

    up = await startUp(dataDir)
    const db = new Database(path.join(dataDir, 'fleetstream.db'), { readonly: true, fileMustExist: true })
    const rows = () =>
      Number(
        (
          db.prepare("SELECT count(*) AS n FROM telemetry WHERE device_id LIKE 'kill-%'").get() as {
            n: number
          }
        ).n,
      )
    for (let i = 0; i < 300 && rows() < summary.acknowledged; i++)
      await new Promise((r) => setTimeout(r, 100))
    // Every acknowledged reading is stored; at most the ones in flight at the kill are extra.
    expect(rows()).toBeGreaterThanOrEqual(summary.acknowledged)
    expect(rows()).toBeLessThanOrEqual(summary.acknowledged + summary.unanswered)
    db.close()
  }, 180_000)
})
