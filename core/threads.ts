import { readlinkSync } from 'node:fs'
import os from 'node:os'
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

/**
 * Lowers the calling thread's CPU priority to `nice` (0–19), so that under load the kernel runs
 * the process's other threads first. Linux only, where a nice value belongs to a thread (its
 * id from /proc/thread-self) and threads it starts later inherit it; elsewhere the value is
 * the whole process's, so it is left alone. Returns why nothing changed, or undefined.
 */
export function lowerThreadPriority(nice: number): string | undefined {
  if (process.platform !== 'linux') return `a thread's priority is the process's on ${process.platform}`
  try {
    const tid = Number(path.basename(readlinkSync('/proc/thread-self')))
    if (!Number.isInteger(tid) || tid <= 0) return `no thread id in /proc/thread-self`
    os.setPriority(tid, nice)
    return undefined
  } catch (err) {
    return (err as Error).message
  }
}
