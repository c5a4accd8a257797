#!/usr/bin/env -S node --max-semi-space-size=64
// Entry point of the `fleetstream` command: the compiled CLI when built (npm run build),
// otherwise the TypeScript sources through tsx (a development checkout). FS_BUILD_DIR
// names another build directory (the benchmarks build into one of their own, so that they
// measure compiled code, as deployed, and a stale dist/ never shadows the sources).
//
// --max-semi-space-size=64 (MiB; Node 20's default is 16): a larger young generation, so the
// many short-lived objects of each reading die in fewer scavenges. `bench:up` measured `up` at
// ~149 instead of ~163 µs of CPU per reading (README, Benchmarks). It is set wherever `up` is
// started: this line (the `fleetstream` command), `npm start`, the Dockerfile's ENTRYPOINT and
// test/up-process.ts (test/deploy.test.ts checks that they agree). A V8 heap flag must be on
// the command line: v8.setFlagsFromString after start-up does not resize the young generation.
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
