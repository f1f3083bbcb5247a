/**
 * The gateway's configuration: command-line flags and an optional JSON config file, merged and
 * checked in one place. Flags override the file; a repeatable flag given at least once replaces
 * the file's list (it does not add to it). Relative paths in the file (`data`, `psk`) are resolved
 * against the file's directory; relative paths in flags against the working directory.
 *
 * Every problem is an `InvalidOptionsError` (`EM_ERR_INVALID_OPTIONS`) whose message names the
 * flag (`--http`) or the file key (`"http" in gw.json`), and whose details carry `flag` or
 * `key` and `file`. The CLI prints it and exits with status 2.
 */
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { InvalidOptionsError } from '@edge-mesh/errors'
import { isValidRegionName } from '@edge-mesh/region-state'
import { LOG_LEVELS, PEER_ID_HINT, REGION_NAME_HINT, isPeerId, parseFlags, parseWriterFlags, type LogLevel } from '@edge-mesh/service'

/** Defaults of the settings that have one. */
export const DEFAULTS = {
  listen: ['/ip4/127.0.0.1/tcp/0'],
  http: { host: '127.0.0.1', port: 8080 },
  logLevel: 'info' as LogLevel,
  readyMinPeers: 0,
  maxPendingReadings: 200_000,
  bodyLimitBytes: 4 * 1024 * 1024
} as const

/** The gateway's settings after flags and file are merged and checked. */
export interface GatewayConfig {
  /** Regions held, at least one. */
  regions: string[]
  /** libp2p listen multiaddrs. @default ['/ip4/127.0.0.1/tcp/0'] */
  listen: string[]
  /** Peers to keep connected: multiaddrs with /p2p/<peer id>. @default [] */
  bootstrap: string[]
  /** Data directory (peer key and LevelDB). Without it: a fresh identity and memory only. */
  dataDir?: string
  /** HTTP listen address; port 0 picks a free port. @default 127.0.0.1:8080 */
  http: { host: string, port: number }
  /** MQTT broker URL to take readings from (`sensors/<region>/<sensor>`). */
  mqtt?: string
  /** Private-network key file (swarm.key format). */
  pskFile?: string
  /** @default 'info' */
  logLevel: LogLevel
  /** Connected peers /ready requires. @default 0 */
  readyMinPeers: number
  /** Readings accepted but not yet durable before ingest answers 429. @default 200000 */
  maxPendingReadings: number
  /** Largest HTTP request body, bytes. @default 4 MiB */
  bodyLimitBytes: number
  /** Anti-entropy period of the mesh, ms (0 disables). @default the mesh's (10000) */
  syncIntervalMs?: number
  /**
   * Writer authorization: for each region named, the peer ids allowed to write it (this
   * gateway's own id included). Frames and readings of other writers are refused. @default none
   */
  writers?: Record<string, string[]>
}

/** The result of parsing a command line. */
export type ParsedCommand =
  | { help: true }
  | { help: false, json: boolean, config: GatewayConfig }

/** Config file keys and the flag each one matches. */
const FILE_KEYS = {
  regions: '--region',
  listen: '--listen',
  bootstrap: '--bootstrap',
  data: '--data',
  http: '--http',
  mqtt: '--mqtt',
  psk: '--psk',
  logLevel: '--log-level',
  readyMinPeers: '--ready-min-peers',
  maxPending: '--max-pending',
  bodyLimit: '--body-limit',
  syncIntervalMs: '--sync-interval',
  writers: '--writer'
} as const

type FileKey = keyof typeof FILE_KEYS

/** The flags of `edge-mesh gateway`, for node:util parseArgs. */
const FLAGS = {
  config: { type: 'string' },
  region: { type: 'string', multiple: true },
  listen: { type: 'string', multiple: true },
  bootstrap: { type: 'string', multiple: true },
  data: { type: 'string' },
  http: { type: 'string' },
  mqtt: { type: 'string' },
  psk: { type: 'string' },
  'log-level': { type: 'string' },
  'ready-min-peers': { type: 'string' },
  'max-pending': { type: 'string' },
  'body-limit': { type: 'string' },
  'sync-interval': { type: 'string' },
  writer: { type: 'string', multiple: true },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
} as const

/** Where a setting came from, to name it in errors. */
interface Source {
  /** `--http`, or `"http" in /path/gw.json`. */
  label: string
  details: Record<string, unknown>
}

const flagSource = (flag: string): Source => ({ label: flag, details: { flag } })
const fileSource = (key: string, file: string): Source => ({ label: `"${key}" in ${file}`, details: { key, file } })

function fail (src: Source, msg: string, extra: Record<string, unknown> = {}): never {
  throw new InvalidOptionsError(`${src.label}: ${msg}`, { ...src.details, ...extra })
}

/**
 * Parses `host:port` (`[v6]:port` for IPv6). Port 0 is allowed (a free port). Throws naming
 * `src`.
 */
function parseHostPort (s: string, src: Source): { host: string, port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(s)
  if (m === null) fail(src, `expected host:port (e.g. 127.0.0.1:8080 or [::1]:8080), got ${JSON.stringify(s)}`, { value: s })
  const port = Number(m[3])
  if (port > 65535) fail(src, `port ${port} is over 65535`, { value: s })
  return { host: m[1] ?? m[2], port }
}

function checkMultiaddr (s: string, src: Source, needPeerId: boolean): string {
  try {
    const ma = multiaddr(s)
    if (needPeerId && !ma.getComponents().some(c => c.name === 'p2p')) {
      fail(src, `${JSON.stringify(s)} has no /p2p/<peer id> part (the gateway prints its addresses with one)`, { value: s })
    }
  } catch (err) {
    if (err instanceof InvalidOptionsError) throw err
    fail(src, `${JSON.stringify(s)} is not a valid multiaddr (${(err as Error).message})`, { value: s })
  }
  return s
}

function checkMqttUrl (s: string, src: Source): string {
  let url: URL
  try {
    url = new URL(s)
  } catch {
    fail(src, `${JSON.stringify(s)} is not a URL (e.g. mqtt://127.0.0.1:1883)`, { value: s })
  }
  if (!['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'ws:', 'wss:'].includes(url.protocol)) {
    fail(src, `${JSON.stringify(s)} must be an mqtt://, mqtts://, ws:// or wss:// URL`, { value: s })
  }
  return s
}

function checkRegions (list: string[], src: Source): string[] {
  const seen = new Set<string>()
  for (const r of list) {
    if (!isValidRegionName(r)) {
      fail(src, `invalid region name ${JSON.stringify(r)} (${REGION_NAME_HINT})`, { value: r })
    }
    if (seen.has(r)) fail(src, `region ${JSON.stringify(r)} is given twice`, { value: r })
    seen.add(r)
  }
  return list
}

function checkPeerId (s: string, src: Source): string {
  if (!isPeerId(s)) fail(src, `${JSON.stringify(s)} is not a peer id (${PEER_ID_HINT})`, { value: s })
  return s
}

/** The `writers` key of a config file: `{ "<region>": ["<peer id>", ...] }`. */
function writersFromFile (v: unknown, src: Source): Record<string, string[]> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(src, 'must be an object of region name to a list of peer ids', { value: v })
  const out: Record<string, string[]> = {}
  for (const [region, ids] of Object.entries(v)) {
    checkRegions([region], src)
    out[region] = stringList(ids, src).map(id => checkPeerId(id, src))
    if (out[region].length === 0) fail(src, `region ${JSON.stringify(region)} lists no writer`, { value: region })
  }
  return out
}

function checkLogLevel (s: string, src: Source): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(s)) fail(src, `must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(s)}`, { value: s })
  return s as LogLevel
}

/** A non-negative integer (`min` and up) from a flag's text. */
function intFlag (s: string, src: Source, min: number): number {
  if (!/^\d+$/.test(s.trim())) fail(src, `must be an integer of at least ${min}, got ${JSON.stringify(s)}`, { value: s })
  return intValue(Number(s), src, min)
}

function intValue (n: unknown, src: Source, min: number): number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min) fail(src, `must be an integer of at least ${min}, got ${JSON.stringify(n)}`, { value: n })
  return n
}

/** A byte size from a flag: a number of bytes, or with a k/K/m/M suffix (KiB, MiB). */
function sizeFlag (s: string, src: Source): number {
  const m = /^(\d+)\s*([kKmM]i?[bB]?)?$/.exec(s.trim())
  if (m === null) fail(src, `must be a number of bytes, optionally with a k or m suffix (e.g. 4m), got ${JSON.stringify(s)}`, { value: s })
  const unit = (m[2] ?? '').toLowerCase()
  const n = Number(m[1]) * (unit.startsWith('m') ? 1024 * 1024 : unit.startsWith('k') ? 1024 : 1)
  return intValue(n, src, 1)
}

function stringValue (v: unknown, src: Source): string {
  if (typeof v !== 'string' || v.length === 0) fail(src, `must be a non-empty string, got ${JSON.stringify(v)}`, { value: v })
  return v
}

function stringList (v: unknown, src: Source): string[] {
  if (!Array.isArray(v) || v.some(x => typeof x !== 'string' || x.length === 0)) {
    fail(src, `must be an array of non-empty strings, got ${JSON.stringify(v)}`, { value: v })
  }
  return v as string[]
}

/** Settings from the file or the flags, checked, with where the key file setting came from. */
type Partial_ = Partial<GatewayConfig> & { pskSource?: Source }

async function readConfigFile (file: string): Promise<Partial_> {
  const src = flagSource('--config')
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    fail(src, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file })
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    fail(src, `${file} is not valid JSON: ${(err as Error).message}`, { file })
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(src, `${file} must hold a JSON object`, { file })
  const dir = dirname(file)
  const out: Partial_ = {}
  for (const [key, value] of Object.entries(raw)) {
    const at = fileSource(key, file)
    if (!Object.prototype.hasOwnProperty.call(FILE_KEYS, key)) {
      fail(at, `unknown key (known keys: ${Object.keys(FILE_KEYS).join(', ')})`)
    }
    switch (key as FileKey) {
      case 'regions': out.regions = checkRegions(stringList(value, at), at); break
      case 'listen': out.listen = stringList(value, at).map(a => checkMultiaddr(a, at, false)); break
      case 'bootstrap': out.bootstrap = stringList(value, at).map(a => checkMultiaddr(a, at, true)); break
      case 'data': out.dataDir = resolve(dir, stringValue(value, at)); break
      case 'http': out.http = parseHostPort(stringValue(value, at), at); break
      case 'mqtt': out.mqtt = checkMqttUrl(stringValue(value, at), at); break
      case 'psk': out.pskFile = resolve(dir, stringValue(value, at)); out.pskSource = at; break
      case 'logLevel': out.logLevel = checkLogLevel(stringValue(value, at), at); break
      case 'readyMinPeers': out.readyMinPeers = intValue(value, at, 0); break
      case 'maxPending': out.maxPendingReadings = intValue(value, at, 1); break
      case 'bodyLimit': out.bodyLimitBytes = intValue(value, at, 1); break
      case 'syncIntervalMs': out.syncIntervalMs = intValue(value, at, 0); break
      case 'writers': out.writers = writersFromFile(value, at); break
    }
  }
  return out
}

/**
 * Parses the arguments of `edge-mesh gateway` (without the subcommand), reads the config file if
 * `--config` is given, merges (flags win) and checks everything. Throws `InvalidOptionsError`
 * naming the flag or file key at fault.
 */
export async function parseGatewayCommand (argv: string[], cwd: string = process.cwd()): Promise<ParsedCommand> {
  const values = parseFlags(argv, FLAGS, 'edge-mesh gateway')
  if (values.help === true) return { help: true }
  const file: Partial_ = typeof values.config === 'string' ? await readConfigFile(resolve(cwd, values.config)) : {}
  const flags: Partial_ = {}
  const str = (name: string): string | undefined => values[name] as string | undefined
  const list = (name: string): string[] | undefined => values[name] as string[] | undefined
  const regions = list('region')
  if (regions !== undefined) flags.regions = checkRegions(regions, flagSource('--region'))
  const listen = list('listen')
  if (listen !== undefined) flags.listen = listen.map(a => checkMultiaddr(a, flagSource('--listen'), false))
  const bootstrap = list('bootstrap')
  if (bootstrap !== undefined) flags.bootstrap = bootstrap.map(a => checkMultiaddr(a, flagSource('--bootstrap'), true))
  const data = str('data')
  if (data !== undefined) flags.dataDir = resolve(cwd, stringValue(data, flagSource('--data')))
  const http = str('http')
  if (http !== undefined) flags.http = parseHostPort(http, flagSource('--http'))
  const mqtt = str('mqtt')
  if (mqtt !== undefined) flags.mqtt = checkMqttUrl(mqtt, flagSource('--mqtt'))
  const psk = str('psk')
  if (psk !== undefined) {
    flags.pskFile = resolve(cwd, stringValue(psk, flagSource('--psk')))
    flags.pskSource = flagSource('--psk')
  }
  const level = str('log-level')
  if (level !== undefined) flags.logLevel = checkLogLevel(level, flagSource('--log-level'))
  const minPeers = str('ready-min-peers')
  if (minPeers !== undefined) flags.readyMinPeers = intFlag(minPeers, flagSource('--ready-min-peers'), 0)
  const maxPending = str('max-pending')
  if (maxPending !== undefined) flags.maxPendingReadings = intFlag(maxPending, flagSource('--max-pending'), 1)
  const bodyLimit = str('body-limit')
  if (bodyLimit !== undefined) flags.bodyLimitBytes = sizeFlag(bodyLimit, flagSource('--body-limit'))
  const syncInterval = str('sync-interval')
  if (syncInterval !== undefined) flags.syncIntervalMs = intFlag(syncInterval, flagSource('--sync-interval'), 0)
  const writer = list('writer')
  if (writer !== undefined) flags.writers = parseWriterFlags(writer, '--writer')

  const merged = { ...file, ...flags }
  if (merged.regions === undefined || merged.regions.length === 0) {
    throw new InvalidOptionsError('at least one region is required: --region <name> (repeatable) or "regions" in the config file', { flag: '--region' })
  }
  const config: GatewayConfig = {
    regions: merged.regions,
    listen: merged.listen ?? [...DEFAULTS.listen],
    bootstrap: merged.bootstrap ?? [],
    http: merged.http ?? { ...DEFAULTS.http },
    logLevel: merged.logLevel ?? DEFAULTS.logLevel,
    readyMinPeers: merged.readyMinPeers ?? DEFAULTS.readyMinPeers,
    maxPendingReadings: merged.maxPendingReadings ?? DEFAULTS.maxPendingReadings,
    bodyLimitBytes: merged.bodyLimitBytes ?? DEFAULTS.bodyLimitBytes
  }
  if (merged.dataDir !== undefined) config.dataDir = merged.dataDir
  if (merged.mqtt !== undefined) config.mqtt = merged.mqtt
  if (merged.pskFile !== undefined) config.pskFile = merged.pskFile
  if (merged.syncIntervalMs !== undefined) config.syncIntervalMs = merged.syncIntervalMs
  if (merged.writers !== undefined) {
    for (const region of Object.keys(merged.writers)) {
      if (!config.regions.includes(region)) {
        throw new InvalidOptionsError(`--writer: writers are given for region ${JSON.stringify(region)}, which this gateway does not hold (--region)`, { flag: '--writer', region })
      }
    }
    config.writers = merged.writers
  }
  if (config.pskFile !== undefined) await checkReadable(config.pskFile, merged.pskSource ?? flagSource('--psk'))
  return { help: false, json: values.json === true, config }
}

async function checkReadable (file: string, src: Source): Promise<void> {
  try {
    await readFile(file)
  } catch (err) {
    fail(src, `cannot read the key file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file })
  }
}

/** `http://host:port` for an address (IPv6 hosts in brackets). */
export function httpUrl (host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`
}
