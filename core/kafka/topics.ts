import type { TopicsConfig } from '../config/schema'
import type { TopicSpec } from './log'

/**
 * The topics of the design (ARCHITECTURE.md), named by configuration. The device registry and
 * the rule definitions are compacted: the latest record per key is the current state.
 */
export function designTopics(cfg: TopicsConfig): TopicSpec[] {
  const plain = (name: string): TopicSpec => ({
    name,
    partitions: cfg.partitions,
    replicationFactor: cfg.replicationFactor,
  })
  const compacted = (name: string): TopicSpec => ({ ...plain(name), compacted: true })
  return [
    plain(cfg.raw),
    compacted(cfg.devices),
    plain(cfg.enriched),
    plain(cfg.late),
    plain(cfg.rollups1m),
    plain(cfg.rollups1h),
    compacted(cfg.rules),
    plain(cfg.alerts),
    plain(cfg.deadletter),
  ]
}
