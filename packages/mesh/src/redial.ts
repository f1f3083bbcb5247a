import type { Libp2p, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export interface RedialInit {
  /** First wait after a failed dial or a disconnect, ms. @default 500 */
  minMs?: number
  /** Longest wait between dials, ms. @default 30000 */
  maxMs?: number
}

interface Target {
  addr: Multiaddr
  peer: string
  waitMs: number
  timer: ReturnType<typeof setTimeout> | undefined
}

/**
 * Keeps the bootstrap peers connected: dials each one, and after a failed dial or a disconnect
 * dials again with exponential backoff (minMs doubling to maxMs), forever, until stopped. The
 * bootstrap module of libp2p dials only once.
 */
export class Redialer {
  private readonly node: Libp2p
  private readonly minMs: number
  private readonly maxMs: number
  private readonly targets = new Map<string, Target>()
  private stopped = false
  dials = 0
  failures = 0
  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const t = this.targets.get(evt.detail.toString())
    if (t !== undefined) this.schedule(t, t.waitMs)
  }

  constructor (node: Libp2p, addrs: Multiaddr[], init: RedialInit = {}) {
    this.node = node
    this.minMs = init.minMs ?? 500
    this.maxMs = init.maxMs ?? 30_000
    for (const addr of addrs) {
      const peer = addr.getComponents().find(c => c.name === 'p2p')?.value
      if (peer === undefined || peer === node.peerId.toString()) continue
      this.targets.set(peer, { addr, peer, waitMs: this.minMs, timer: undefined })
    }
  }

  start (): void {
    this.node.addEventListener('peer:disconnect', this.onDisconnect)
    for (const t of this.targets.values()) this.schedule(t, 0)
  }

  private schedule (t: Target, ms: number): void {
    if (this.stopped || t.timer !== undefined) return
    t.timer = setTimeout(() => {
      t.timer = undefined
      void this.dial(t)
    }, ms)
    t.timer.unref?.()
  }

  private async dial (t: Target): Promise<void> {
    if (this.stopped) return
    if (this.node.getConnections().some(c => c.remotePeer.toString() === t.peer)) {
      t.waitMs = this.minMs
      return
    }
    this.dials++
    try {
      await this.node.dial(t.addr, { signal: AbortSignal.timeout(10_000) })
      t.waitMs = this.minMs
    } catch {
      this.failures++
      const wait = t.waitMs
      t.waitMs = Math.min(this.maxMs, t.waitMs * 2)
      this.schedule(t, wait)
    }
  }

  stop (): void {
    this.stopped = true
    this.node.removeEventListener('peer:disconnect', this.onDisconnect)
    for (const t of this.targets.values()) {
      if (t.timer !== undefined) clearTimeout(t.timer)
      t.timer = undefined
    }
  }
}
