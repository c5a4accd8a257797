import path from 'node:path'
import { Worker } from 'node:worker_threads'

/**
 * Starts the module `name` (no extension) beside `callerFile` on a worker thread: the compiled
 * JavaScript, or — when the caller itself runs from the TypeScript sources, as in a development
 * checkout and the tests — the `.ts` file through tsx.
 */
export function startWorker(callerFile: string, name: string, workerData: object): Worker {
  const dir = path.dirname(callerFile)
  if (callerFile.endsWith('.ts')) {
    const entry = path.join(dir, `${name}.ts`)
    return new Worker(`require('tsx/cjs'); require(${JSON.stringify(entry)})`, { eval: true, workerData })
  }
  return new Worker(path.join(dir, `${name}.js`), { workerData })
}
