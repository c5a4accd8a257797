import { rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'

/** Names this run's folder for temporary files (test/tmp.ts); every project's global setup calls it. */
export function setupTestTmp(): void {
  process.env.FLEETSTREAM_TEST_TMP ??= path.join(
    os.tmpdir(),
    'fleetstream-tests',
    `run-${process.pid}-${Date.now()}`,
  )
}

/** Removes it once every test has run (jest runs the global teardowns after all projects' tests). */
export function teardownTestTmp(): void {
  const dir = process.env.FLEETSTREAM_TEST_TMP
  if (dir) rmSync(dir, { recursive: true, force: true })
}
