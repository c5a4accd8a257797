import { AssignerProtocol, type PartitionAssigner } from 'kafkajs'

const NAME = 'FleetstreamCoPartitioned'

/**
 * Which member gets which partitions: partition p of every topic goes to the same member
 * (members sorted by id, p modulo their number). A job that reads co-partitioned topics (a
 * device table and readings, keyed by device id) keeps partition p's state in one place only
 * if partition p of each topic comes to the same instance. kafkajs's RoundRobinAssigner deals
 * the partitions of all topics out in one sequence, so that holds only when the number of
 * members divides the partition count (6 partitions, 4 instances: partition 0 of the table to
 * one instance, partition 0 of the readings to another).
 */
export function coPartitionedAssignment(
  memberIds: string[],
  partitionsByTopic: Map<string, number[]>,
): Map<string, Record<string, number[]>> {
  const sorted = [...memberIds].sort()
  const out = new Map<string, Record<string, number[]>>()
  if (sorted.length === 0) return out
  for (const [topic, partitions] of partitionsByTopic)
    for (const p of [...partitions].sort((a, b) => a - b)) {
      const member = sorted[p % sorted.length]!
      let mine = out.get(member)
      if (!mine) out.set(member, (mine = {}))
      ;(mine[topic] ??= []).push(p)
    }
  return out
}

/** The assignment above as a kafkajs partition assigner (offered before round robin, so a group
 * whose older members know only round robin keeps working while it is upgraded). */
export const coPartitionedAssigner: PartitionAssigner = ({ cluster }) => ({
  name: NAME,
  version: 0,
  async assign({ members, topics }) {
    const partitions = new Map(
      topics.map((t) => [t, cluster.findTopicPartitionMetadata(t).map((m) => m.partitionId)]),
    )
    const byMember = coPartitionedAssignment(
      members.map((m) => m.memberId),
      partitions,
    )
    return members.map(({ memberId }) => ({
      memberId,
      memberAssignment: AssignerProtocol.MemberAssignment.encode({
        version: 0,
        assignment: byMember.get(memberId) ?? {},
        userData: Buffer.alloc(0),
      }),
    }))
  },
  protocol({ topics }) {
    return {
      name: NAME,
      metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }),
    }
  },
})
