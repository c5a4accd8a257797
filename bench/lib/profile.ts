import { readFileSync, readdirSync, statSync } from 'node:fs'
import path from 'node:path'

/** Top self-time functions of the newest main-thread CPU profile (node --cpu-prof) in `dir`,
 * for "what limits the figure" (a profile left by an earlier run is not the one to read). */
export function summarizeProfile(dir: string): { selfMs: number; fn: string }[] {
  const all = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))
  // CPU.<date>.<time>.<pid>.<thread id>.<n>.cpuprofile: the main thread's is thread 0 (the
  // bridge's producer thread writes one of its own).
  const main = all.filter((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f))
  const file = (main.length ? main : all).sort(
    (a, b) => statSync(path.join(dir, b)).mtimeMs - statSync(path.join(dir, a)).mtimeMs,
  )[0]
  if (!file) return []
  const prof = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as {
    nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[]
    samples: number[]
    timeDeltas: number[]
  }
  const byId = new Map(prof.nodes.map((n) => [n.id, n]))
  const self = new Map<string, number>()
  prof.samples.forEach((id, i) => {
    const n = byId.get(id)!
    const where = n.callFrame.url
      .replace(/^.*node_modules\//, '')
      .replace(/^file:\/\/.*\/main\//, '')
      .replace(/^.*\/main\//, '')
    const key = `${n.callFrame.functionName || '(anonymous)'} ${where}${where ? `:${n.callFrame.lineNumber + 1}` : ''}`
    self.set(key, (self.get(key) ?? 0) + (prof.timeDeltas[i] ?? 0) / 1000)
  })
  return [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 25)
    .map(([fn, ms]) => ({ fn, selfMs: Math.round(ms) }))
}
