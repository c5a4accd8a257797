import { startServers } from './servers'
import { setupTestTmp } from './tmp-hooks'

/**
 * Integration tests run against real servers: start them (a no-op for those already up). A
 * server that does not start fails the whole run here, with its log tail, before any test.
 */
export default function globalSetup(): void {
  setupTestTmp()
  if (process.env.FLEETSTREAM_SKIP_SERVER_START === '1') return
  try {
    startServers()
  } catch (err) {
    throw new Error(
      `real test servers failed to start (see the [servers] lines above for the log tail): ${(err as Error).message}`,
    )
  }
}
