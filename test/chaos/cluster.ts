/**
 * A cluster of `edge-mesh gateway` processes for one chaos seed (test/helpers/gateway-process.ts),
 * each with its own LevelDB data dir, its clock offset (EDGE_MESH_TEST_CLOCK_OFFSET_MS) and the
 * partition control (EDGE_MESH_TEST_CONTROL=1).
 *
 * The peer keys are created in the data dirs and the ports picked before the start, so that all
 * gateways start at once, each bootstrapping the ones before it (every pair is dialed by one side),
 * and a gateway restarts on the same mesh and HTTP ports, where the others' redialers find it. If a
 * port was taken meanwhile, the gateway restarts on fresh ports with every other gateway as its
 * bootstrap list, so that it dials them itself.
 */
import { rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadOrCreatePeerKey } from '@edge-mesh/mesh'
import { CLOCK_OFFSET_ENV, CONTROL_ENV, PARTITION_PATH } from '../../packages/gateway/src/test-hooks.ts'
import { GatewayProcess, type TeardownHost } from '../helpers/gateway-process.ts'
import type { SeedPlan } from './plan.ts'

/** Bound on one HTTP request to a gateway. */
export const REQUEST_TIMEOUT_MS = 5000
/** Bound on a gateway's start (ready line). */
const READY_TIMEOUT_MS = 60_000
/** Anti-entropy period of the gateways, ms. */
const SYNC_INTERVAL_MS = 1000

/** The outcome of a request: a reply, refused (nothing was sent), or in doubt (maybe processed). */
export type Reply =
  | { kind: 'reply', status: number, body: unknown }
  | { kind: 'refused', error: string }
  | { kind: 'doubt', error: string }

interface Member {
  index: number
  regions: string[]
  offset: number
  dir: string
  peerId: string
  listenPort: number
  httpPort: number
  /** Every other member's address, once this one had to move to fresh ports. */
  fullBootstrap: boolean
  proc: GatewayProcess | undefined
  /** 0 at start, +1 at every SIGKILL. */
  life: number
  deny: string[]
  url: string
  restarts: number
  /** A restart under way. */
  starting: Promise<void> | undefined
  /** stderr of earlier lives (tails), for failure messages. */
  pastStderr: string
}

async function freePort (): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      srv.close(() => { resolve(port) })
    })
  })
}

const portOf = (s: string): number => Number(/:(\d+)(?:\/|$)/.exec(s)?.[1] ?? /\/tcp\/(\d+)/.exec(s)?.[1] ?? 0)

export class ChaosCluster {
  readonly plan: SeedPlan
  private readonly members: Member[]
  private readonly teardowns: Array<() => Promise<void> | void> = []
  private readonly host: TeardownHost = { teardown: fn => { this.teardowns.push(fn) } }
  private readonly root: string
  private closed = false
  /** Gateways that exited without being killed: what, and the tail of their stderr. */
  readonly crashes: string[] = []

  /** Removes the data dirs if the process exits before close() (a signal, an uncaught error). */
  private readonly onExit = (): void => { rmSync(this.root, { recursive: true, force: true }) }

  private constructor (plan: SeedPlan, root: string, members: Member[]) {
    this.plan = plan
    this.root = root
    this.members = members
    process.once('exit', this.onExit)
  }

  /** Creates the data dirs and keys, picks ports, starts every gateway and waits for their ready lines. */
  static async start (plan: SeedPlan): Promise<ChaosCluster> {
    const root = await mkdtemp(join(tmpdir(), `em-chaos-${plan.seed}-`))
    const members: Member[] = []
    const ports = new Set<number>()
    const port = async (): Promise<number> => {
      for (let i = 0; i < 20; i++) {
        const p = await freePort()
        if (!ports.has(p)) {
          ports.add(p)
          return p
        }
      }
      throw new Error('no free port found in 20 attempts')
    }
    try {
      for (let i = 0; i < plan.regions.length; i++) {
        const dir = join(root, `g${i}`)
        const key = await loadOrCreatePeerKey(dir)
        members.push({
          index: i,
          regions: plan.regions[i],
          offset: plan.offsets[i],
          dir,
          peerId: key.publicKey.toString(),
          listenPort: await port(),
          httpPort: await port(),
          fullBootstrap: false,
          proc: undefined,
          life: 0,
          deny: [],
          url: '',
          restarts: 0,
          starting: undefined,
          pastStderr: ''
        })
      }
    } catch (err) {
      await rm(root, { recursive: true, force: true })
      throw err
    }
    const cluster = new ChaosCluster(plan, root, members)
    try {
      await Promise.all(members.map(async m => { await cluster.launch(m) }))
    } catch (err) {
      await cluster.close()
      throw err
    }
    return cluster
  }

  get size (): number {
    return this.members.length
  }

  peerId (g: number): string {
    return this.members[g].peerId
  }

  regions (g: number): string[] {
    return this.members[g].regions
  }

  life (g: number): number {
    return this.members[g].life
  }

  isUp (g: number): boolean {
    return this.members[g].proc?.running === true
  }

  /** Process details of a gateway for failure messages (its stderr tail, past lives included). */
  diagnostics (g: number): string {
    const m = this.members[g]
    const past = m.pastStderr !== '' ? `\nstderr of the life before the last SIGKILL:\n…${m.pastStderr}` : ''
    return `g${g} ${m.peerId} (life ${m.life}, ${m.restarts} restarts)${m.proc?.diagnostics() ?? ''}${past}`
  }

  private addr (m: Member): string {
    return `/ip4/127.0.0.1/tcp/${m.listenPort}/p2p/${m.peerId}`
  }

  private async launch (m: Member): Promise<void> {
    const opts = (fresh: boolean): Parameters<typeof GatewayProcess.start>[1] => ({
      name: `g${m.index}`,
      regions: m.regions,
      data: m.dir,
      listen: [`/ip4/127.0.0.1/tcp/${fresh ? 0 : m.listenPort}`],
      http: `127.0.0.1:${fresh ? 0 : m.httpPort}`,
      bootstrap: this.members.filter(o => o !== m && (m.fullBootstrap || fresh || o.index < m.index)).map(o => this.addr(o)),
      syncIntervalMs: SYNC_INTERVAL_MS,
      logLevel: 'warn',
      readyTimeoutMs: READY_TIMEOUT_MS,
      stopTimeoutMs: 5000,
      env: { [CLOCK_OFFSET_ENV]: String(m.offset), [CONTROL_ENV]: '1' }
    })
    let proc: GatewayProcess
    try {
      proc = await GatewayProcess.start(this.host, opts(false))
    } catch (err) {
      // A port taken meanwhile: start on fresh ports, dialing every other gateway.
      if (!/EADDRINUSE|address already in use/i.test(String(err))) throw err
      m.fullBootstrap = true
      proc = await GatewayProcess.start(this.host, opts(true))
      m.listenPort = portOf(proc.addr)
      m.httpPort = portOf(proc.url)
    }
    m.proc = proc
    m.url = proc.url
    const life = m.life
    void proc.exited.then(exit => {
      if (this.closed || m.life !== life) return
      this.crashes.push(`g${m.index} (life ${life}) exited by itself: code ${String(exit.code)}, signal ${String(exit.signal)}${proc.diagnostics()}`)
    })
    if (m.deny.length > 0) await this.applyDeny(m)
  }

  /**
   * SIGKILLs a gateway (its life number goes up at once: requests sent from now on are the next
   * life's). A restart under way is awaited first.
   */
  async kill (g: number): Promise<void> {
    const m = this.members[g]
    await m.starting?.catch(() => {})
    m.life++
    const proc = m.proc
    if (proc === undefined) return
    await proc.kill('SIGKILL')
    m.pastStderr = proc.stderr.slice(-2000)
  }

  /**
   * Starts a killed gateway again from its data dir; its current deny list is applied once it is
   * ready. Resolves when it is; a second call meanwhile waits for the same start.
   */
  async restart (g: number): Promise<void> {
    const m = this.members[g]
    if (m.starting !== undefined) return await m.starting
    if (this.isUp(g)) return
    m.restarts++
    const starting = this.launch(m).finally(() => { m.starting = undefined })
    m.starting = starting
    await starting
  }

  /** Sets each gateway's deny list from a split into two sides (undefined heals everything). */
  async partition (sides: [number[], number[]] | undefined): Promise<void> {
    for (const m of this.members) {
      if (sides === undefined) m.deny = []
      else {
        const other = sides[0].includes(m.index) ? sides[1] : sides[0]
        m.deny = other.map(i => this.members[i].peerId)
      }
    }
    await Promise.all(this.members.filter(m => this.isUp(m.index)).map(async m => { await this.applyDeny(m) }))
  }

  private async applyDeny (m: Member): Promise<void> {
    const r = await this.request(m.index, 'POST', PARTITION_PATH, { deny: m.deny })
    if (r.kind === 'reply' && r.status !== 200) throw new Error(`g${m.index}: partition control answered ${r.status}: ${JSON.stringify(r.body)}`)
    // A gateway killed meanwhile gets its list when it restarts.
  }

  /** One HTTP request to gateway g, classified (never throws). */
  async request (g: number, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
    const m = this.members[g]
    if (m.url === '') return { kind: 'refused', error: 'not started' }
    const h: Record<string, string> = { ...headers }
    if (body !== undefined) h['content-type'] = 'application/json'
    try {
      const res = await fetch(m.url + path, {
        method,
        headers: h,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS)
      })
      const text = await res.text()
      let parsed: unknown = text
      if ((res.headers.get('content-type') ?? '').includes('json') && text !== '') parsed = JSON.parse(text)
      return { kind: 'reply', status: res.status, body: parsed }
    } catch (err) {
      const code = (err as { cause?: { code?: string } }).cause?.code
      const why = `${String(err)}${code !== undefined ? ` (${code})` : ''}`
      // Refused: the connection was never made, so nothing was sent.
      if (code === 'ECONNREFUSED') return { kind: 'refused', error: why }
      return { kind: 'doubt', error: why }
    }
  }

  /** SIGKILLs every gateway and removes the data dirs. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.allSettled(this.members.map(async m => { if (m.proc !== undefined) await m.proc.kill('SIGKILL') }))
    for (const f of this.teardowns.reverse()) await Promise.resolve(f()).catch(() => {})
    await rm(this.root, { recursive: true, force: true, maxRetries: 3 })
    process.off('exit', this.onExit)
  }
}
