#!/usr/bin/env node
// Entry point of the `fleetstream` command: the compiled CLI when built (npm run build),
// otherwise the TypeScript sources through tsx (a development checkout).
const fs = require('node:fs')
const path = require('node:path')

const built = path.join(__dirname, '..', 'dist', 'cli', 'main.js')
if (fs.existsSync(built)) {
  require(built).main(process.argv)
} else {
  require('tsx/cjs')
  require(path.join(__dirname, '..', 'cli', 'main.ts')).main(process.argv)
}
