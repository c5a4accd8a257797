import { teardownTestTmp } from './tmp-hooks'

/** After every test: the run's temporary files go (the servers stay up for the next run). */
export default function globalTeardown(): void {
  teardownTestTmp()
}
