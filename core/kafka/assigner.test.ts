import { coPartitionedAssignment } from './assigner'

describe('core > kafka > co-partitioned assignment', () => {
  const topics = new Map([
    ['iot.devices', [0, 1, 2, 3, 4, 5]],
    ['iot.telemetry.raw', [5, 4, 3, 2, 1, 0]],
  ])

  it.each([1, 2, 3, 4, 5, 6, 7])('gives partition p of every topic to one member (%i members)', (n) => {
    const members = Array.from({ length: n }, (_, i) => `m-${String.fromCharCode(97 + ((i * 5) % 7))}${i}`)
    const a = coPartitionedAssignment(members, topics)
    const owner = new Map<string, string>()
    for (const [member, byTopic] of a)
      for (const [topic, ps] of Object.entries(byTopic))
        for (const p of ps) {
          expect(owner.has(`${topic}/${p}`)).toBe(false)
          owner.set(`${topic}/${p}`, member)
        }
    // Every partition once, and partition p of both topics with the same member.
    expect(owner.size).toBe(12)
    for (let p = 0; p < 6; p++)
      expect(owner.get(`iot.devices/${p}`)).toBe(owner.get(`iot.telemetry.raw/${p}`))
    // Balanced: partition counts per member differ by at most one (members beyond 6 get none).
    const counts = members.map((m) => a.get(m)?.['iot.devices']?.length ?? 0)
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1)
  })

  it('does not depend on the order members are listed in', () => {
    const a = coPartitionedAssignment(['b', 'c', 'a'], topics)
    const b = coPartitionedAssignment(['c', 'a', 'b'], topics)
    expect(Object.fromEntries(a)).toEqual(Object.fromEntries(b))
    expect(a.get('a')).toEqual({ 'iot.devices': [0, 3], 'iot.telemetry.raw': [0, 3] })
  })
})
