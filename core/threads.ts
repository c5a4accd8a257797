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

/** The kernel's id of the calling thread (Linux: from /proc/thread-self), or undefined. */
export function threadId(): number | undefined {
  try {
    const tid = Number(path.basename(readlinkSync('/proc/thread-self')))
    return Number.isInteger(tid) && tid > 0 ? tid : undefined
  } catch {
    return undefined
  }
}

/**
 * Lowers the calling thread's CPU priority by `by` nice levels below the process's (at most to
 * 19), so that under load the kernel runs the process's other threads first. Linux only, where
 * a nice value belongs to a thread and threads it starts later inherit it; elsewhere the value
 * is the whole process's, so it is left alone. Returns why nothing changed, or undefined.
 */
export function lowerThreadPriority(by: number): string | undefined {
  if (process.platform !== 'linux') return `a thread's priority is the process's on ${process.platform}`
  const tid = threadId()
  if (tid === undefined) return 'no thread id in /proc/thread-self'
  try {
    os.setPriority(tid, Math.min(19, os.getPriority(process.pid) + by))
    return undefined
  } catch (err) {
    return (err as Error).message
  }
}
