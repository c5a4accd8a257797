/** Process measurements shared by the benchmarks: CPU-seconds and RSS from /proc, percentiles. */
import { execFileSync, type ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())

/** Kills `child` when the bench exits, however it exits: a failed bench once left its jobs
 * running, and their CPU then counted in the next bench. Returns `child`. */
export function reapOnExit<C extends ChildProcess>(child: C): C {
  const reap = () => child.kill('SIGKILL')
  process.on('exit', reap)
  child.once('exit', () => process.off('exit', reap))
  return child
}

/** User + system CPU-seconds a process has used so far. */
export const cpuOfPid = (pid: number): number => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(f[11]) + Number(f[12])) / CLK_TCK
}

/**
 * CPU-seconds of a process and all its descendants, including those already reaped (their
 * time is in their parent's cutime/cstime): a server's total, e.g. PostgreSQL's backends.
 */
export const cpuOfTree = (root: number): number => {
  const stats = new Map<number, string[]>()
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      stats.set(Number(d), readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]!.split(' '))
    } catch {
      // gone meanwhile
    }
  }
  const inTree = (pid: number): boolean => {
    for (let p = pid, hops = 0; p > 1 && hops < 64; hops++) {
      if (p === root) return true
      p = Number(stats.get(p)?.[1] ?? 0)
    }
    return false
  }
  let ticks = 0
  for (const [pid, f] of stats)
    if (inTree(pid)) ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])
  return ticks / CLK_TCK
}

/** The machine's CPU time so far from /proc/stat, seconds: busy (all but idle and iowait) and total. */
export const machineCpu = (): { busy: number; total: number } => {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0)
  return { busy: (total - f[3]! - f[4]!) / CLK_TCK, total: total / CLK_TCK }
}

/** Resident memory of a process, MiB. */
export const rssMiB = (pid: number): number =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024

/** The pid of a server started by scripts/servers.sh. */
export const serverPid = (name: string): number =>
  Number(readFileSync(`/tmp/fleetstream-servers/${name}/pid`, 'utf8').trim())

/** Test servers of scripts/servers.sh that are running: a bench beside them shares its cores
 * with them (idle Cassandra and Kafka cost a benchmark ~10% here). */
export const runningServers = (): string[] =>
  ['kafka', 'cassandra', 'postgres', 'mosquitto'].filter((name) => {
    try {
      process.kill(serverPid(name), 0)
      return true
    } catch {
      return false
    }
  })

/** The median of `xs` (nearest rank; 0 when empty). */
export const median = (xs: number[]): number => pct(xs, 50) ?? 0

/** The p-th percentile (nearest rank) of xs, rounded to 2 decimals; null when empty. */
export const pct = (xs: number[], p: number): number | null => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length ? +s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!.toFixed(2) : null
}
