// Preloaded into a benchmarked process (node --require): samples where memory is allocated,
// including the objects the GC has collected since. `--heap-prof` leaves those out, and they are
// the garbage that costs GC time. On SIGUSR2 it writes the profile (Chrome DevTools'
// .heapprofile format) to $FS_ALLOC_PROFILE_OUT, so the bench picks the window it measures.
'use strict'
const inspector = require('node:inspector')
const fs = require('node:fs')

const out = process.env.FS_ALLOC_PROFILE_OUT
const session = new inspector.Session()
session.connect()
session.post('HeapProfiler.enable')
session.post(
  'HeapProfiler.startSampling',
  { samplingInterval: 16384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true },
  (err) => err && process.stderr.write(`allocation sampling not started: ${err.message}\n`),
)
process.once('SIGUSR2', () => {
  session.post('HeapProfiler.stopSampling', (err, result) => {
    if (err) return process.stderr.write(`allocation profile not written: ${err.message}\n`)
    if (out) fs.writeFileSync(out, JSON.stringify(result.profile))
  })
})
