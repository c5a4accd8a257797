/**
 * Admits new connections to the broker a few at a time: at most `max` of them between
 * admission and their CONNACK (or their close); the others wait, unread, in arrival order.
 *
 * Without it, 10,000 devices connecting at once were all handled together: each turn of the
 * event loop ran one step of every login in progress (accept, parse CONNECT, verify the token,
 * register, CONNACK, empty the session queue), turns of 300–650 ms, and the connected devices'
 * acknowledgements and the stream jobs' fetches (served on the same thread) waited behind them:
 * a probe's reading took 1.4–2 s to reach the store during a login storm. With a bound, a turn
 * holds at most `max` logins' steps. EMQX and HiveMQ bound connection rates for the same reason.
 *
 * A connection that sends nothing (a slow or hostile client) would hold its slot until the
 * broker's connect timeout; a slot is therefore freed after `holdMs` at the latest, and the
 * connection goes on under that timeout as before.
 */
export class LoginGate {
  private inFlight = 0
  private readonly waiting: { admit: (release: () => void) => void; gone: boolean }[] = []
  private head = 0

  constructor(
    private readonly max: number,
    private readonly holdMs: number,
  ) {}

  /** Connections waiting for a slot. */
  get queued(): number {
    return this.waiting.length - this.head
  }

  /**
   * Calls `admit` now if a slot is free, else once one frees, with the function that frees the
   * slot again (safe to call more than once). Returns a function that withdraws a connection
   * still waiting (it closed first); after admission it does nothing.
   */
  enter(admit: (release: () => void) => void): () => void {
    const entry = { admit, gone: false }
    this.waiting.push(entry)
    this.pump()
    return () => {
      entry.gone = true
    }
  }

  private pump(): void {
    while (this.inFlight < this.max && this.head < this.waiting.length) {
      const entry = this.waiting[this.head++]!
      if (entry.gone) continue
      entry.gone = true
      this.inFlight++
      let released = false
      const release = () => {
        if (released) return
        released = true
        clearTimeout(timer)
        this.inFlight--
        this.pump()
      }
      const timer = setTimeout(release, this.holdMs)
      timer.unref()
      entry.admit(release)
    }
    if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting.splice(0, this.head)
      this.head = 0
    }
  }
}
