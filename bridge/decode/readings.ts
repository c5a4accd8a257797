import { RejectError } from '../errors'
import { parseEventTime } from './timestamp'

/** A metric value: what the envelope's `metrics` map holds. */
export type MetricValue = number | boolean | string

/** One reading as decoded from a device payload, before it becomes an envelope. */
export interface DecodedReading {
  ts: number
  seq: number | null
  metrics: Record<string, MetricValue>
  meta: Record<string, string>
}

/** One refused entry of a payload: its position (for batches) and why. */
export interface EntryReject {
  index: number | null
  error: RejectError
}

/** What a payload decoded to: the good readings and the refused entries. */
export interface DecodeResult {
  readings: DecodedReading[]
  rejects: EntryReject[]
}

/** Limits and context for interpreting a payload. */
export interface ShapeOptions {
  /** The authenticated device: a payload may not claim another. */
  deviceId: string
  receivedAt: number
  maxFutureSkewMs: number
  maxMetrics: number
  maxReadings: number
  maxStringBytes: number
}

const TIME_KEYS = ['ts', 'timestamp', 'time'] as const
const DEVICE_KEYS = ['deviceId', 'deviceid', 'device_id'] as const
/** Metric names: what SQL columns, Grafana's DEVICE.METRIC and Prometheus labels all accept. */
const METRIC_NAME = /^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$/

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' &&
  v !== null &&
  !Array.isArray(v) &&
  !Buffer.isBuffer(v) &&
  !(v instanceof Uint8Array)

function checkClaim(claimed: unknown, opts: ShapeOptions): void {
  if (claimed === undefined || claimed === null) return
  if (String(claimed) !== opts.deviceId) {
    throw new RejectError(
      'FS_BRIDGE_FORBIDDEN',
      `payload claims device "${String(claimed).slice(0, 64)}" but the sender is "${opts.deviceId}"`,
      opts.deviceId,
    )
  }
}

/** Interprets one flat reading `{ts, seq?, meta?, <metric>: value, …}`. */
export function readFlat(
  obj: Record<string, unknown>,
  opts: ShapeOptions,
  extraMeta: Record<string, string> = {},
): DecodedReading {
  let timeValue: unknown
  for (const k of TIME_KEYS) {
    if (obj[k] !== undefined) {
      timeValue = obj[k]
      break
    }
  }
  const time = parseEventTime(timeValue, opts.receivedAt, opts.maxFutureSkewMs)
  let seq: number | null = null
  if (obj.seq !== undefined && obj.seq !== null) {
    const s = typeof obj.seq === 'string' && /^\d+$/.test(obj.seq) ? Number(obj.seq) : obj.seq
    if (typeof s !== 'number' || !Number.isSafeInteger(s) || s < 0) {
      throw new RejectError(
        'FS_BRIDGE_TYPE',
        `seq must be a non-negative integer, got ${JSON.stringify(obj.seq).slice(0, 40)}`,
        opts.deviceId,
      )
    }
    seq = s
  }
  const meta: Record<string, string> = { ...extraMeta }
  if (obj.meta !== undefined) {
    if (!isPlainObject(obj.meta))
      throw new RejectError('FS_BRIDGE_TYPE', 'meta must be an object of strings', opts.deviceId)
    const m = obj.meta
    for (const k in m) {
      if (!Object.hasOwn(m, k)) continue
      const v = m[k]
      if (typeof v === 'object' && v !== null)
        throw new RejectError('FS_BRIDGE_TYPE', `meta.${k} must be a string`, opts.deviceId)
      meta[k] = String(v)
    }
  }
  const metrics: Record<string, MetricValue> = {}
  let count = 0
  // for…in over own keys, not Object.entries: no array per key (this runs for every reading).
  for (const key in obj) {
    if (!Object.hasOwn(obj, key)) continue
    const value = obj[key]
    if ((TIME_KEYS as readonly string[]).includes(key) || key === 'seq' || key === 'meta') continue
    if ((DEVICE_KEYS as readonly string[]).includes(key)) {
      checkClaim(value, opts)
      continue
    }
    // `__proto__` passes the pattern but is no key of a plain object (it would vanish unseen).
    if (!METRIC_NAME.test(key) || key === '__proto__')
      throw new RejectError(
        'FS_BRIDGE_DECODE',
        `metric name "${key.slice(0, 64)}" is not allowed (letters, digits, _ . : -; at most 128)`,
        opts.deviceId,
      )
    if (++count > opts.maxMetrics)
      throw new RejectError(
        'FS_BRIDGE_LIMIT',
        `more than ${opts.maxMetrics} metrics in one reading`,
        opts.deviceId,
      )
    if (typeof value === 'number') {
      if (!Number.isFinite(value))
        throw new RejectError('FS_BRIDGE_TYPE', `metric ${key} is not a finite number`, opts.deviceId)
      metrics[key] = value
    } else if (typeof value === 'boolean') {
      metrics[key] = value
    } else if (typeof value === 'string') {
      if (Buffer.byteLength(value) > opts.maxStringBytes)
        throw new RejectError(
          'FS_BRIDGE_LIMIT',
          `metric ${key} is longer than ${opts.maxStringBytes} bytes`,
          opts.deviceId,
        )
      metrics[key] = value
    } else if (typeof value === 'bigint') {
      metrics[key] = Number(value)
    } else {
      const kind =
        value === null
          ? 'null'
          : Array.isArray(value)
            ? 'an array'
            : typeof value === 'object'
              ? 'an object'
              : typeof value
      throw new RejectError(
        'FS_BRIDGE_TYPE',
        `metric ${key} is ${kind}; expected a number, boolean or string`,
        opts.deviceId,
      )
    }
  }
  if (count === 0) throw new RejectError('FS_BRIDGE_EMPTY', 'reading has no metrics', opts.deviceId)
  if (time.missing) meta.ts_source = 'received'
  return { ts: time.ts, seq, metrics, meta }
}

/** Runs `read` on each entry, collecting good readings and per-entry rejects. */
function readEach(
  entries: unknown[],
  opts: ShapeOptions,
  read: (e: Record<string, unknown>) => DecodedReading,
): DecodeResult {
  if (entries.length === 0)
    return {
      readings: [],
      rejects: [
        { index: null, error: new RejectError('FS_BRIDGE_EMPTY', 'batch has no readings', opts.deviceId) },
      ],
    }
  if (entries.length > opts.maxReadings) {
    return {
      readings: [],
      rejects: [
        {
          index: null,
          error: new RejectError(
            'FS_BRIDGE_LIMIT',
            `batch has ${entries.length} readings; at most ${opts.maxReadings}`,
            opts.deviceId,
          ),
        },
      ],
    }
  }
  const out: DecodeResult = { readings: [], rejects: [] }
  entries.forEach((e, index) => {
    try {
      if (!isPlainObject(e))
        throw new RejectError('FS_BRIDGE_TYPE', 'a reading must be an object', opts.deviceId)
      out.readings.push(read(e))
    } catch (err) {
      if (!(err instanceof RejectError)) throw err
      out.rejects.push({ index, error: err })
    }
  })
  return out
}

/**
 * Interprets a decoded payload: a flat reading, a list of readings, `{readings: […]}`, or the
 * batch form `{deviceinfo: {deviceid, fw_ver, batt_lvl}, tsdata: [{timestamp, …}]}`.
 * A whole-payload problem throws RejectError; a bad entry of a batch is returned in `rejects`.
 */
export function readPayload(value: unknown, opts: ShapeOptions): DecodeResult {
  if (Array.isArray(value)) return readEach(value, opts, (e) => readFlat(e, opts))
  if (!isPlainObject(value))
    throw new RejectError('FS_BRIDGE_TYPE', 'payload must be an object or a list of readings', opts.deviceId)
  if ('tsdata' in value || 'deviceinfo' in value) {
    const info = value.deviceinfo ?? {}
    if (!isPlainObject(info))
      throw new RejectError('FS_BRIDGE_TYPE', 'deviceinfo must be an object', opts.deviceId)
    checkClaim(info.deviceid ?? info.deviceId, opts)
    const meta: Record<string, string> = {}
    for (const [k, v] of Object.entries(info)) {
      if (k === 'deviceid' || k === 'deviceId' || v === null || v === undefined) continue
      if (typeof v === 'object')
        throw new RejectError('FS_BRIDGE_TYPE', `deviceinfo.${k} must be a scalar`, opts.deviceId)
      meta[k] = String(v)
    }
    if (!Array.isArray(value.tsdata))
      throw new RejectError('FS_BRIDGE_TYPE', 'tsdata must be a list of readings', opts.deviceId)
    return readEach(value.tsdata, opts, (e) => readFlat(e, opts, meta))
  }
  if ('readings' in value) {
    checkClaim(value.deviceId ?? value.deviceid, opts)
    if (!Array.isArray(value.readings))
      throw new RejectError('FS_BRIDGE_TYPE', 'readings must be a list', opts.deviceId)
    return readEach(value.readings, opts, (e) => readFlat(e, opts))
  }
  return { readings: [readFlat(value, opts)], rejects: [] }
}
