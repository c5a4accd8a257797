import { setupTestTmp } from './tmp-hooks'

/** Unit tests need no servers: only the run's folder for temporary files. */
export default function globalSetup(): void {
  setupTestTmp()
}
