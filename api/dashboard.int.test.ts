import { execFileSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { chromium, type Browser } from 'playwright-core'
import { simulate } from '../simulator/simulate'
import { registerDevices, startUp, type Up } from '../test/up-process'
import { tempDir } from '../test/tmp'

const ARTIFACTS = path.resolve(__dirname, '../test-artifacts')
const MIN = 60_000

// The dashboard in a real browser (Debian's Chromium, headless, driven by playwright-core)
// against `fleetstream up` with simulated devices: it loads, its chart has data points, and an
// alert raised while the page is open appears without a reload.
describe('api > web dashboard in headless Chromium', () => {
  let up: Up
  let browser: Browser | undefined
  afterAll(async () => {
    await browser?.close()
    await up?.close()
  })

  it('shows the fleet, a chart with data, and a live alert; saves a screenshot', async () => {
    const dataDir = tempDir('fs-dash-')
    up = await startUp(dataDir)
    const devices = await registerDevices(dataDir, 'sim-', 8)
    const summary = await simulate({
      devices,
      transport: 'http',
      httpUrl: `http://127.0.0.1:${up.listening.http}`,
      mqttUrl: '',
      readings: 120,
      intervalMs: 2 * MIN,
      batch: 40,
      concurrency: 8,
      faults: { outOfOrder: 0, late: 0, offline: 0, skew: 0, bad: 0 },
      lateMs: 0,
      skewMs: 0,
    })
    expect(summary.acknowledged).toBe(8 * 120)

    const executablePath = execFileSync(
      'bash',
      [path.resolve(__dirname, '../scripts/servers.sh'), 'browser'],
      {
        encoding: 'utf8',
      },
    ).trim()
    browser = await chromium.launch({
      executablePath,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ], // playwright gives each launch a fresh profile directory of its own
    })
    const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } })
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    await page.goto(`http://127.0.0.1:${up.listening.api}/#key=${up.demo.apiKey}`)
    // (Expressions as strings: they run in the page, which this file's types do not describe.)
    await page.waitForFunction('Number(document.getElementById("n-devices").textContent) >= 9', null, {
      timeout: 30_000,
    })
    await page.waitForFunction('Number(document.getElementById("chart").dataset.points) > 0', null, {
      timeout: 30_000,
    })
    expect(await page.locator('#chart canvas').count()).toBe(1)
    expect(await page.locator('#battery-table tbody tr').count()).toBe(8)
    await page.waitForFunction('document.getElementById("status").textContent === "live"')

    // The demo device's registry limit is 40 °C; 90 °C for over two minutes raises an alert.
    const now = Date.now()
    const res = await fetch(`http://127.0.0.1:${up.listening.http}/v1/telemetry`, {
      method: 'POST',
      headers: {
        Authorization: `Basic ${Buffer.from(`${up.demo.deviceId}:${up.demo.token}`).toString('base64')}`,
        'Content-Type': 'application/json',
      },
      body: JSON.stringify(
        Array.from({ length: 5 }, (_, i) => ({ timestamp: now - (4 - i) * MIN, temperature: 90 })),
      ),
    })
    expect(res.status).toBe(200)
    const row = page.locator('#alert-table tr.alert-row', { hasText: up.demo.deviceId })
    await row.first().waitFor({ timeout: 30_000 })
    expect(await row.first().textContent()).toMatch(/Temperature outside the device's limits/)

    mkdirSync(ARTIFACTS, { recursive: true })
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png'), fullPage: true })
    expect(errors).toEqual([])
  }, 180_000)
})
