/**
 * Backtesting: the rules job's own step (./rules.ts) driven over recorded
 * records instead of a consumer group, with no output written anywhere. One engine, two
 * drivers: per partition, the registry records first (as the live job bootstraps its table
 * topic), then the readings in offset order, in batches; what the live job would commit to
 * `iot.alerts` is returned instead.
 */
import type { AvroCodec } from '../../core/envelope/codec'
import type { Telemetry } from '../../core/envelope/telemetry'
import type { InRecord } from '../../core/kafka/log'
import type { CompiledRule } from '../../rules/engine'
import type { Alert, Device } from '../../schemas/types.generated'
import { rulesJob } from './rules'

/** What a backtest needs besides the records. */
export interface BacktestOptions {
  rules: CompiledRule[]
  telemetry: AvroCodec<Telemetry>
  device: AvroCodec<Device>
  alert: AvroCodec<Alert>
  /** Only readings with event time in [from, to) are judged (the registry is read whole). */
  from?: number
  to?: number
  outOfOrdernessMs?: number
  /** Records per step, like a consumer batch. */
  batchSize?: number
}

const DEVICES = 'backtest.devices'
const READINGS = 'backtest.readings'

/** Runs the rules over `devices` (registry records) and `readings` (enriched telemetry); returns the alert events. */
export async function backtest(
  devices: InRecord[],
  readings: InRecord[],
  o: BacktestOptions,
): Promise<Alert[]> {
  const job = rulesJob({
    enrichedTopic: READINGS,
    devicesTopic: DEVICES,
    alertsTopic: 'backtest.alerts',
    deadletterTopic: 'backtest.deadletter',
    table: { list: () => o.rules },
    // Historical data: nothing is "in the future", idleness never fires.
    time: {
      outOfOrdernessMs: o.outOfOrdernessMs ?? 5_000,
      idleTimeoutMs: Number.MAX_SAFE_INTEGER,
      maxFutureMs: Number.MAX_SAFE_INTEGER,
    },
    telemetry: o.telemetry,
    device: o.device,
    alert: o.alert,
  })
  const inRange = async (r: InRecord) => {
    if (o.from === undefined && o.to === undefined) return true
    const ts = (await o.telemetry.decode(r.value ?? Buffer.alloc(0)).catch(() => null))?.ts
    return ts !== undefined && (o.from === undefined || ts >= o.from) && (o.to === undefined || ts < o.to)
  }
  const byPartition = new Map<number, InRecord[]>()
  const add = (r: InRecord, topic: string) => {
    if (!byPartition.has(r.partition)) byPartition.set(r.partition, [])
    // Field by field, not a spread: a consumed record may keep its fields as getters.
    const { partition, offset, key, value, headers, timestamp } = r
    byPartition.get(r.partition)!.push({ topic, partition, offset, key, value, headers, timestamp })
  }
  for (const r of devices) add(r, DEVICES)
  for (const r of readings) if (await inRange(r)) add(r, READINGS)
  const alerts: Alert[] = []
  const size = o.batchSize ?? 500
  for (const [, records] of [...byPartition].sort((a, b) => a[0] - b[0])) {
    const state = job.initState()
    const ordered = [
      ...records
        .filter((r) => r.topic === DEVICES)
        .sort((a, b) => Number(BigInt(a.offset) - BigInt(b.offset))),
      ...records
        .filter((r) => r.topic === READINGS)
        .sort((a, b) => Number(BigInt(a.offset) - BigInt(b.offset))),
    ]
    for (let i = 0; i < ordered.length; i += size) {
      const step = await job.process(state, ordered.slice(i, i + size), Date.now())
      for (const out of step.outputs)
        if (out.topic === 'backtest.alerts') alerts.push(await o.alert.decode(out.value as Buffer))
    }
  }
  return alerts
}
