import { Cron } from 'croner'

/** A scheduled report: its cron expression and what it does for a run scheduled at `at`. */
export interface ScheduledReport {
  name: string
  cron: string
  run(at: Date): Promise<void>
}

/**
 * Runs reports on their cron schedules (croner), with the clock passed in: `tick(now)` runs every
 * report whose scheduled time fell after the previous tick and at or before `now`, in time
 * order — so tests drive it with a fake clock, and a process that was down runs what it missed
 * since its last tick (not since before it started).
 */
export class ReportScheduler {
  private last: Date

  constructor(
    private readonly reports: ScheduledReport[],
    start: Date,
    private readonly timezone = 'UTC',
  ) {
    for (const r of reports) new Cron(r.cron, { paused: true, timezone }) // refuse a bad expression now
    this.last = start
  }

  /** The scheduled times of each report in (last, now]. */
  due(now: Date): { report: ScheduledReport; at: Date }[] {
    const out: { report: ScheduledReport; at: Date }[] = []
    for (const report of this.reports) {
      const cron = new Cron(report.cron, { paused: true, timezone: this.timezone })
      for (let at = cron.nextRun(this.last); at && at <= now; at = cron.nextRun(at)) out.push({ report, at })
    }
    return out.sort((a, b) => a.at.getTime() - b.at.getTime())
  }

  async tick(now: Date): Promise<{ name: string; at: Date }[]> {
    const ran: { name: string; at: Date }[] = []
    for (const { report, at } of this.due(now)) {
      await report.run(at)
      ran.push({ name: report.name, at })
    }
    this.last = now
    return ran
  }

  /** Ticks at each next scheduled time on the real clock; returns a stop function. */
  start(clock: () => Date = () => new Date()): () => void {
    let timer: NodeJS.Timeout | undefined
    let stopped = false
    const next = () => {
      const now = clock()
      const times = this.reports
        .map((r) => new Cron(r.cron, { paused: true, timezone: this.timezone }).nextRun(now))
        .filter((d): d is Date => d !== null)
      if (stopped || times.length === 0) return
      const wait = Math.max(0, Math.min(...times.map((d) => d.getTime())) - now.getTime())
      timer = setTimeout(() => void this.tick(clock()).finally(next), Math.min(wait + 50, 2 ** 31 - 1))
    }
    next()
    return () => {
      stopped = true
      clearTimeout(timer)
    }
  }
}

/** The UTC day before `at` (`YYYY-MM-DD`): what a daily report run at `at` covers. */
export const previousDay = (at: Date): string =>
  new Date(at.getTime() - 86_400_000).toISOString().slice(0, 10)

/** The UTC month before `at` (`YYYY-MM`). */
export function previousMonth(at: Date): string {
  const d = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() - 1, 1))
  return d.toISOString().slice(0, 7)
}
