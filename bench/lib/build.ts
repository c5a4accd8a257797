import { execFileSync } from 'node:child_process'
import path from 'node:path'

const ROOT = path.resolve(__dirname, '../..')
/** Top level, like dist/: compiled code finds schemas/ and the dashboard at the same depth. */
export const BENCH_BUILD = '.bench-build'

/**
 * Compiles the project (tsconfig.build.json, as the Docker image does) into BENCH_BUILD and
 * points every `bin/fleetstream.js` this process starts at it (FS_BUILD_DIR): benchmarks
 * measure compiled code, as deployed, not the TypeScript sources through tsx's loader (which
 * cost the bridge ~40% more CPU per message). Returns how it was built, for the result file.
 */
export function useCompiledBuild(): { build: string } {
  execFileSync(
    process.execPath,
    [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', BENCH_BUILD],
    { cwd: ROOT, stdio: 'inherit' },
  )
  process.env.FS_BUILD_DIR = BENCH_BUILD
  return { build: `tsc -p tsconfig.build.json --outDir ${BENCH_BUILD} (compiled, as deployed)` }
}
