/**
 * The command line of `edge-mesh analytics`, parsed and checked in one place. Every problem is an
 * `InvalidOptionsError` (`EM_ERR_INVALID_OPTIONS`) whose message names the flag and whose details
 * carry `flag`; the CLI prints it and exits with status 2.
 */
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { InvalidOptionsError } from '@edge-mesh/errors'
import { LOG_LEVELS, parseFlags, parseWriterFlags, type LogLevel } from '@edge-mesh/service'

/** Defaults of the settings that have one. */
export const ANALYTICS_DEFAULTS = {
  http: { host: '127.0.0.1', port: 8090 },
  listen: ['/ip4/127.0.0.1/tcp/0'],
  retentionMs: 7 * 86_400_000,
  anomalyThreshold: 3.5,
  maxFollowedRegions: 64,
  summaryIntervalMs: 1000,
  /**
   * The store's largest batch. A batch is what queued while the previous one was written, so it
   * grows only when the peer falls behind; then larger batches rewrite each sensor's state and
   * windows once for more of its readings (about 1.6-1.9x the store's throughput at 10k against
   * 2k, with 3000 sensors, in a quick same-machine comparison).
   */
  storeMaxBatchReadings: 10_000
} as const

/** The settings of `edge-mesh analytics` after parsing. */
export interface AnalyticsConfig {
  /** Data directory (absolute). */
  dataDir: string
  bootstrap: string[]
  listen: string[]
  http: { host: string, port: number }
  pskFile?: string
  retentionMs: number
  anomalyThreshold: number
  writers?: Record<string, string[]>
  syncIntervalMs?: number
  maxFollowedRegions: number
  logLevel: LogLevel
}

export type ParsedAnalyticsCommand =
  | { help: true }
  | { help: false, json: boolean, config: AnalyticsConfig }

const FLAGS = {
  bootstrap: { type: 'string', multiple: true },
  data: { type: 'string' },
  http: { type: 'string' },
  listen: { type: 'string', multiple: true },
  psk: { type: 'string' },
  retention: { type: 'string' },
  'anomaly-threshold': { type: 'string' },
  writer: { type: 'string', multiple: true },
  'sync-interval': { type: 'string' },
  'max-regions': { type: 'string' },
  'log-level': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
} as const

function fail (flag: string, msg: string, extra: Record<string, unknown> = {}): never {
  throw new InvalidOptionsError(`${flag}: ${msg}`, { flag, ...extra })
}

/** `host:port` (`[v6]:port` for IPv6); port 0 picks a free port. */
export function parseHostPort (s: string, flag: string = '--http'): { host: string, port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(s)
  if (m === null) fail(flag, `expected host:port (e.g. 127.0.0.1:8090 or [::1]:8090), got ${JSON.stringify(s)}`, { value: s })
  const port = Number(m[3])
  if (port > 65535) fail(flag, `port ${port} is over 65535`, { value: s })
  return { host: m[1] ?? m[2], port }
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }

/** A duration: a number with a unit (ms, s, m, h, d, w; `7d`, `24h`, `1.5h`), or bare milliseconds. Positive. */
export function parseDuration (s: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?$/.exec(s.trim())
  if (m === null) fail(flag, `expected a duration such as 7d, 24h, 90m, 30s or 5000ms, got ${JSON.stringify(s)}`, { value: s })
  const ms = Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 'ms'])
  if (!Number.isSafeInteger(ms) || ms < 1) fail(flag, `must be at least 1 ms, got ${JSON.stringify(s)}`, { value: s })
  return ms
}

function intFlag (s: string, flag: string, min: number): number {
  if (!/^\d{1,15}$/.test(s.trim())) fail(flag, `must be an integer of at least ${min}, got ${JSON.stringify(s)}`, { value: s })
  const n = Number(s)
  if (n < min) fail(flag, `must be an integer of at least ${min}, got ${JSON.stringify(s)}`, { value: s })
  return n
}

function checkMultiaddr (s: string, flag: string, needPeerId: boolean): string {
  let ok = true
  try {
    const ma = multiaddr(s)
    ok = !needPeerId || ma.getComponents().some(c => c.name === 'p2p')
  } catch (err) {
    fail(flag, `${JSON.stringify(s)} is not a valid multiaddr (${(err as Error).message})`, { value: s })
  }
  if (!ok) fail(flag, `${JSON.stringify(s)} has no /p2p/<peer id> part (a gateway prints its addresses with one)`, { value: s })
  return s
}

/**
 * Parses the arguments of `edge-mesh analytics` (without the subcommand). Throws
 * `InvalidOptionsError` naming the flag at fault.
 */
export async function parseAnalyticsCommand (argv: string[], cwd: string = process.cwd()): Promise<ParsedAnalyticsCommand> {
  const values = parseFlags(argv, FLAGS, 'edge-mesh analytics')
  if (values.help === true) return { help: true }
  const str = (name: string): string | undefined => values[name] as string | undefined
  const list = (name: string): string[] => (values[name] as string[] | undefined) ?? []

  const data = str('data')
  if (data === undefined || data.trim() === '') {
    throw new InvalidOptionsError('--data <dir> is required: the analytics peer keeps its history (and its identity) there', { flag: '--data' })
  }
  const levelText = str('log-level') ?? 'info'
  if (!(LOG_LEVELS as readonly string[]).includes(levelText)) fail('--log-level', `must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(levelText)}`, { value: levelText })
  const thresholdText = str('anomaly-threshold')
  let anomalyThreshold: number = ANALYTICS_DEFAULTS.anomalyThreshold
  if (thresholdText !== undefined) {
    anomalyThreshold = /^\d+(\.\d+)?$/.test(thresholdText.trim()) ? Number(thresholdText) : NaN
    if (!(anomalyThreshold > 0) || !Number.isFinite(anomalyThreshold)) fail('--anomaly-threshold', `must be a positive number of standard deviations (e.g. 3.5), got ${JSON.stringify(thresholdText)}`, { value: thresholdText })
  }
  const config: AnalyticsConfig = {
    dataDir: resolve(cwd, data),
    bootstrap: list('bootstrap').map(a => checkMultiaddr(a, '--bootstrap', true)),
    listen: list('listen').map(a => checkMultiaddr(a, '--listen', false)),
    http: str('http') !== undefined ? parseHostPort(str('http') as string) : { ...ANALYTICS_DEFAULTS.http },
    retentionMs: str('retention') !== undefined ? parseDuration(str('retention') as string, '--retention') : ANALYTICS_DEFAULTS.retentionMs,
    anomalyThreshold,
    maxFollowedRegions: str('max-regions') !== undefined ? intFlag(str('max-regions') as string, '--max-regions', 1) : ANALYTICS_DEFAULTS.maxFollowedRegions,
    logLevel: levelText as LogLevel
  }
  if (config.listen.length === 0) config.listen = [...ANALYTICS_DEFAULTS.listen]
  const writers = list('writer')
  if (writers.length > 0) config.writers = parseWriterFlags(writers, '--writer')
  const sync = str('sync-interval')
  if (sync !== undefined) config.syncIntervalMs = intFlag(sync, '--sync-interval', 0)
  const psk = str('psk')
  if (psk !== undefined) {
    config.pskFile = resolve(cwd, psk)
    try {
      await readFile(config.pskFile)
    } catch (err) {
      fail('--psk', `cannot read the key file ${config.pskFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file: config.pskFile })
    }
  }
  return { help: false, json: values.json === true, config }
}
