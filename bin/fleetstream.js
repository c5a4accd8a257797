#!/usr/bin/env node
// Entry point of the `fleetstream` command: the compiled CLI when built (npm run build),
// otherwise the TypeScript sources through tsx (a development checkout). FS_BUILD_DIR
// names another build directory (the benchmarks build into one of their own, so that they
// measure compiled code, as deployed, and a stale dist/ never shadows the sources).
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const dir = process.env.FS_BUILD_DIR
const built = path.join(dir ? path.resolve(root, dir) : path.join(root, 'dist'), 'cli', 'main.js')
if (dir && !fs.existsSync(built)) {
  process.stderr.write(
    `FS_BUILD_DIR=${dir}: ${built} not found (build it with tsc -p tsconfig.build.json --outDir ${dir})\n`,
  )
  process.exit(2)
}
if (fs.existsSync(built)) {
  require(built).main(process.argv)
} else {
  require('tsx/cjs')
  require(path.join(root, 'cli', 'main.ts')).main(process.argv)
}
