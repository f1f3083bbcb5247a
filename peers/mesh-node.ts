/**
 * A mesh peer as a process: holds regions, persists them under --data, and replicates them over
 * libp2p. The full gateway (HTTP and MQTT ingest, reads, app subscriptions) builds on this.
 *
 * It prints one JSON line per event on stdout: first {"event":"ready","peerId":…,"addrs":[…]}.
 * With --control it reads JSON commands from stdin, one per line, and answers each with a line
 * {"id":…, "ok":true, …} or {"id":…, "ok":false, "error":…, "code":…}:
 *   {"id":1,"cmd":"put","region":"r","sensor":"s","value":1}      → {"reading":{…}} after it is durable
 *   {"id":2,"cmd":"get","region":"r","sensor":"s"}                → {"value":{…}|null}
 *   {"id":3,"cmd":"dump","region":"r"}                            → {"view":[[sensor,t,writer],…]} sorted
 *   {"id":4,"cmd":"stats"}                                        → {"stats":{…}}
 *   {"id":5,"cmd":"sync"}                                         → a sync round with every connected peer
 *   {"id":6,"cmd":"stop"}                                         → stops and exits 0
 */
import { readFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { createMeshPeer, type MeshPeer } from '@edge-mesh/mesh'
import { isEdgeMeshError } from '@edge-mesh/errors'

const HELP = `edge-mesh mesh-node: a mesh peer that holds and replicates regions

Usage: node peers/mesh-node.ts --region <name> [--region <name>...] [options]

Options:
  --region <name>       a region to hold (repeatable, at least one)
  --data <dir>          data directory (peer key and LevelDB); without it, memory only
  --listen <multiaddr>  listen address (repeatable; default /ip4/127.0.0.1/tcp/0)
  --bootstrap <maddr>   a peer to connect to, with /p2p/<id> (repeatable)
  --psk <file>          private network key file (swarm.key format)
  --read-only           never write (subscribe and sync only)
  --sync-interval <ms>  anti-entropy period (default 10000)
  --control             read JSON commands from stdin (for tests and scripts)
  --log-level <level>   log level of the structured (pino) logs on stderr (default info)
  -h, --help            show this help

Example:
  node peers/mesh-node.ts --region eu-west --data ./data/a --listen /ip4/0.0.0.0/tcp/4001
`

const out = (obj: object): void => { process.stdout.write(JSON.stringify(obj) + '\n') }

async function main (): Promise<void> {
  let values
  try {
    values = parseArgs({
      options: {
        region: { type: 'string', multiple: true },
        data: { type: 'string' },
        listen: { type: 'string', multiple: true },
        bootstrap: { type: 'string', multiple: true },
        psk: { type: 'string' },
        'read-only': { type: 'boolean' },
        'sync-interval': { type: 'string' },
        control: { type: 'boolean' },
        'log-level': { type: 'string', default: 'info' },
        help: { type: 'boolean', short: 'h' }
      },
      strict: true
    }).values
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n\n${HELP}`)
    process.exitCode = 2
    return
  }
  if (values.help === true) {
    process.stdout.write(HELP)
    return
  }
  if (values.region === undefined || values.region.length === 0) {
    process.stderr.write(`error: at least one --region is required\n\n${HELP}`)
    process.exitCode = 2
    return
  }
  const syncIntervalMs = values['sync-interval'] !== undefined ? Number(values['sync-interval']) : undefined
  if (syncIntervalMs !== undefined && !(syncIntervalMs >= 0)) {
    process.stderr.write('error: --sync-interval must be a number of milliseconds\n')
    process.exitCode = 2
    return
  }
  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
  const level = String(values['log-level'])
  if (!levels.includes(level)) {
    process.stderr.write(`error: --log-level must be one of ${levels.join(', ')}\n`)
    process.exitCode = 2
    return
  }
  // Logs go to stderr: stdout carries the JSON event lines.
  const logger = pino({ level, base: { component: 'mesh' } }, pino.destination(2))
  const psk = values.psk !== undefined ? new Uint8Array(await readFile(values.psk)) : undefined
  const peer = await createMeshPeer({
    regions: values.region,
    dataDir: values.data,
    listen: values.listen,
    bootstrap: values.bootstrap,
    psk,
    readOnly: values['read-only'] === true,
    syncIntervalMs,
    logger
  })
  logger.info({ peerId: peer.peerId, addrs: peer.addrs(), regions: peer.regions }, 'mesh: started')
  let stopping = false
  const stop = async (): Promise<void> => {
    if (stopping) return
    stopping = true
    await peer.stop()
    out({ event: 'stopped' })
    process.exit(0)
  }
  process.on('SIGINT', () => { void stop() })
  process.on('SIGTERM', () => { void stop() })
  // After the handlers: a signal sent as soon as the ready line is read must find them.
  out({ event: 'ready', peerId: peer.peerId, addrs: peer.addrs() })
  if (values.control === true) {
    const rl = createInterface({ input: process.stdin })
    rl.on('line', line => { void command(peer, line, stop) })
    rl.on('close', () => { void stop() })
  }
}

async function command (peer: MeshPeer, line: string, stop: () => Promise<void>): Promise<void> {
  let id: unknown
  try {
    const c = JSON.parse(line) as { id?: unknown, cmd?: string, region?: string, sensor?: string, value?: unknown }
    id = c.id
    switch (c.cmd) {
      case 'put': {
        const reading = peer.region(String(c.region)).put(String(c.sensor), c.value as never)
        await peer.whenDurable(String(c.region))
        return out({ id, ok: true, reading })
      }
      case 'get':
        return out({ id, ok: true, value: peer.region(String(c.region)).get(String(c.sensor)) ?? null })
      case 'dump': {
        const r = peer.region(String(c.region))
        return out({ id, ok: true, view: r.list().map(s => [s, r.winner(s)?.t, r.winner(s)?.writer]) })
      }
      case 'stats':
        return out({ id, ok: true, stats: peer.stats(), peers: peer.connectedPeers() })
      case 'sync': {
        const reports = await Promise.allSettled(peer.connectedPeers().map(async p => peer.syncWith(p)))
        return out({ id, ok: true, rounds: reports.filter(r => r.status === 'fulfilled').length })
      }
      case 'stop':
        out({ id, ok: true })
        return await stop()
      default:
        return out({ id, ok: false, error: `unknown command ${String(c.cmd)}`, code: 'EM_ERR_INVALID_OPTIONS' })
    }
  } catch (err) {
    out({ id, ok: false, error: (err as Error).message, code: isEdgeMeshError(err) ? err.code : undefined })
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`mesh-node failed: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
})
