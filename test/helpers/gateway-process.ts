/**
 * Spawns `edge-mesh gateway --json` (peers/edge-mesh.ts) as a child process, for end-to-end tests.
 *
 *   const a = await GatewayProcess.start(t, { name: 'A', regions: ['plant-1'], data: dirA })
 *   const res = await a.post('/v1/readings', [{ sensor: 'line-1/temp', value: 21.5 }])
 *   const b = await GatewayProcess.start(t, { name: 'B', regions: ['plant-1'], data: dirB, bootstrap: [a.addr] })
 *   await a.kill('SIGKILL')                        // or a.stop(): SIGTERM, SIGKILL after a bound
 *
 * `start` resolves once the child printed its ready line
 * `{"event":"ready","peerId","addrs":[…],"http":"http://127.0.0.1:PORT"}` on stdout. HTTP listens on
 * a free loopback port (`--http 127.0.0.1:0`) and the mesh on `/ip4/127.0.0.1/tcp/0` unless told
 * otherwise. Each process is stopped in `t.teardown` (SIGTERM, SIGKILL after a bound). The process
 * plumbing (stdout events, stderr in failure messages, stop/kill, HTTP requests, the SIGKILL of
 * every child if the test process exits first) is test/helpers/child-peer.ts.
 */
import { EDGE_MESH_SCRIPT, HttpPeer, type HttpReadyLine, type HttpReply, type PeerProcessOptions, type TeardownHost } from './child-peer.ts'

export { EDGE_MESH_SCRIPT }
export type { Exit, TeardownHost } from './child-peer.ts'

/** Flags of `edge-mesh gateway`. */
export interface GatewayFlags {
  /** --region, repeated (at least one). */
  regions: string[]
  /** --data */
  data?: string
  /** --listen, repeated. @default ['/ip4/127.0.0.1/tcp/0'] */
  listen?: string[]
  /** --bootstrap, repeated (multiaddrs with /p2p/<id>). */
  bootstrap?: string[]
  /** --http @default '127.0.0.1:0' */
  http?: string
  /** --mqtt */
  mqtt?: string
  /** --psk */
  psk?: string
  /** --sync-interval, ms. @default 1000 (quick anti-entropy for tests) */
  syncIntervalMs?: number
  /** --log-level @default 'info' */
  logLevel?: string
  /** --body-limit (bytes, or with a k/m suffix) */
  bodyLimit?: string
  /** Appended as they are. */
  extraArgs?: string[]
}

/** The command-line arguments after `edge-mesh` for `flags` (always with --json). */
export function gatewayArgs (flags: GatewayFlags): string[] {
  const args = ['gateway', '--json']
  for (const r of flags.regions) args.push('--region', r)
  if (flags.data !== undefined) args.push('--data', flags.data)
  for (const l of flags.listen ?? ['/ip4/127.0.0.1/tcp/0']) args.push('--listen', l)
  for (const b of flags.bootstrap ?? []) args.push('--bootstrap', b)
  args.push('--http', flags.http ?? '127.0.0.1:0')
  if (flags.mqtt !== undefined) args.push('--mqtt', flags.mqtt)
  if (flags.psk !== undefined) args.push('--psk', flags.psk)
  args.push('--sync-interval', String(flags.syncIntervalMs ?? 1000))
  args.push('--log-level', flags.logLevel ?? 'info')
  if (flags.bodyLimit !== undefined) args.push('--body-limit', flags.bodyLimit)
  args.push(...(flags.extraArgs ?? []))
  return args
}

export interface GatewayProcessOptions extends GatewayFlags, PeerProcessOptions {}

export type GatewayReady = HttpReadyLine

/** An HTTP reply of a gateway: status, headers and the body parsed as JSON when it is JSON. */
export type GatewayReply<T = unknown> = HttpReply<T>

/** A running `edge-mesh gateway` child. Create with {@link GatewayProcess.start}. */
export class GatewayProcess extends HttpPeer {
  readonly options: GatewayProcessOptions

  private constructor (options: GatewayProcessOptions) {
    super({ ...options, kind: 'gateway', argv: [EDGE_MESH_SCRIPT, ...gatewayArgs(options)] })
    this.options = options
  }

  /**
   * Spawns the gateway and resolves once it printed its ready line. Registers a teardown on `t`
   * that stops it (SIGTERM, then SIGKILL after a bound) if it still runs when the test ends.
   */
  static async start (t: TeardownHost, options: GatewayProcessOptions): Promise<GatewayProcess> {
    return await GatewayProcess.launch(new GatewayProcess(options), t)
  }
}
