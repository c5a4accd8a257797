import { existsSync } from 'node:fs'
import path from 'node:path'

/** The package root (the folder of package.json), from the sources or from a build in dist/. */
function findRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir
    if (path.dirname(dir) === dir) return path.resolve(__dirname, '..')
  }
}

export const PACKAGE_ROOT = findRoot()

/** A file shipped with the package but not compiled (schemas, dashboard, example rules). */
export const assetPath = (...segments: string[]): string => path.join(PACKAGE_ROOT, ...segments)
