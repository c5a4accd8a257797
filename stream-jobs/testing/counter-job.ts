import type { InRecord } from '../../core/kafka/log'
import { defineJob, type StreamJob } from '../runtime/job'

/**
 * A test job: a per-key running count (stateful, changelogged) that writes `key=n` for every
 * record, so a lost or doubled record shows in its output. `check` runs after each state change
 * (a test throws from it to fail a step midway).
 */
export function counterJob(
  topics: { input: string; output: string },
  check: (r: InRecord) => void = () => undefined,
): StreamJob<Map<string, number>> {
  return defineJob<Map<string, number>>({
    name: 'counter',
    inputTopics: [topics.input],
    outputTopics: [topics.output],
    initState: () => new Map(),
    restore: (st, key, value) => st.set(key, Number(value.toString())),
    process(st, records) {
      const outputs = []
      const changelog = new Map<string, Buffer | null>()
      for (const r of records) {
        const n = (st.get(r.key!) ?? 0) + 1
        st.set(r.key!, n)
        check(r)
        changelog.set(r.key!, Buffer.from(String(n)))
        outputs.push({ topic: topics.output, key: r.key, value: Buffer.from(`${r.key}=${n}`) })
      }
      return { outputs, changelog }
    },
  })
}
