import { mkdirSync, mkdtempSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'

/**
 * Temporary folders of tests: all under one folder per test run (named by the global setup,
 * test/tmp-hooks.ts, in FLEETSTREAM_TEST_TMP), which the global teardown removes.
 */
export function tempDir(prefix: string): string {
  const root = process.env.FLEETSTREAM_TEST_TMP ?? path.join(os.tmpdir(), 'fleetstream-tests', 'adhoc')
  mkdirSync(root, { recursive: true })
  return mkdtempSync(path.join(root, prefix))
}
