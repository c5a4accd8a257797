import os from 'node:os'
import path from 'node:path'
import { Worker } from 'node:worker_threads'

/** Runs `lowerThreadPriority(by)` on a worker thread; resolves with its thread id and answer,
 * and the worker stays up until `release` so that its priority can be read from outside. */
async function onWorker(
  by: number,
): Promise<{ tid: number; failed?: string; release: () => Promise<number> }> {
  const code = `
    require('tsx/cjs')
    const { parentPort } = require('node:worker_threads')
    const { lowerThreadPriority, threadId } = require(${JSON.stringify(path.join(__dirname, 'threads.ts'))})
    const failed = lowerThreadPriority(${by})
    parentPort.postMessage({ tid: threadId(), failed })
    parentPort.once('message', () => parentPort.close())`
  const worker = new Worker(code, { eval: true })
  const m = await new Promise<{ tid: number; failed?: string }>((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
  })
  return {
    ...m,
    release: () => {
      worker.postMessage('done')
      return new Promise((r) => worker.once('exit', r))
    },
  }
}

const linux = process.platform === 'linux'
if (!linux)
  console.log(`core/threads: thread priorities are per thread on Linux only, not on ${process.platform}`)
;(linux ? describe : describe.skip)('core > threads > lowerThreadPriority', () => {
  it("lowers the calling thread's priority below the process's, and no other thread's", async () => {
    const before = os.getPriority(process.pid)
    const w = await onWorker(10)
    try {
      expect(w.failed).toBeUndefined()
      expect(w.tid).not.toBe(process.pid)
      expect(os.getPriority(w.tid)).toBe(Math.min(19, before + 10))
      // The main thread (whose id is the process id) and this test's own thread keep theirs.
      expect(os.getPriority(process.pid)).toBe(before)
      expect(os.getPriority()).toBe(before)
    } finally {
      await w.release()
    }
  })

  it('never goes past the lowest priority', async () => {
    const w = await onWorker(100)
    try {
      expect(w.failed).toBeUndefined()
      expect(os.getPriority(w.tid)).toBe(19)
    } finally {
      await w.release()
    }
  })

  it('says why when it cannot, and changes nothing', async () => {
    const w = await onWorker(Number.NaN)
    try {
      expect(w.failed).toMatch(/prio/i)
      expect(os.getPriority(w.tid)).toBe(os.getPriority(process.pid))
    } finally {
      await w.release()
    }
  })
})
