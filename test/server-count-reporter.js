// Jest reporter: after a run, prints how many tests ran against each real server. An
// integration test names its server in its describe title, e.g. 'core > kafka [kafka]'.
const SERVERS = ['kafka', 'cassandra', 'postgres', 'mosquitto', 'cratedb']

class ServerCountReporter {
  onRunComplete(_contexts, results) {
    const counts = new Map(SERVERS.map((s) => [s, { passed: 0, failed: 0, skipped: 0 }]))
    for (const file of results.testResults) {
      for (const t of file.testResults) {
        const title = [...t.ancestorTitles, t.title].join(' ')
        for (const s of SERVERS) {
          if (!title.includes(`[${s}]`)) continue
          const c = counts.get(s)
          if (t.status === 'passed') c.passed++
          else if (t.status === 'failed') c.failed++
          else c.skipped++
        }
      }
    }
    const parts = [...counts]
      .filter(([, c]) => c.passed + c.failed + c.skipped > 0)
      .map(([s, c]) => `${s}: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped`)
    process.stderr.write(`\nTests against real servers — ${parts.length ? parts.join('; ') : 'none ran'}\n`)
  }
}

module.exports = ServerCountReporter
