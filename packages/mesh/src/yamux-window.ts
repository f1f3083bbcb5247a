/**
 * Yamux window updates at half the window, as go-yamux, rust-yamux and hashicorp's yamux send them.
 *
 * Yamux's flow control is a credit per stream: the receiver grants the sender window bytes and
 * tops the credit up with WINDOW_UPDATE frames; the spec leaves when to the receiver.
 * `@chainsafe/libp2p-yamux` 8 sends one after every data frame it receives. A gossip frame is one
 * data frame, so every frame delivered to a neighbour came back as a 12-byte update: one more
 * encrypted Noise message and one more write system call at the receiver, one more read and
 * decryption at the sender. In bench:mesh, 2 socket writes per gossip message delivered
 * (bench/README.md, "Yamux window updates").
 *
 * Here the receiver sends an update once at least half of its window has been used, or when the
 * update carries a flag (SYN/ACK opening the stream). The sender then always has at least half a
 * window of credit (128 kB at the start), so it is never stopped by a missing update, and a frame
 * of a few kB costs 1/30 of an update instead of one. The window's growth (doubled when half a
 * window is used within 4 round trips) is decided at each update, as before and as in go-yamux.
 *
 * The library offers no option for this, so `installWindowUpdateHysteresis` replaces
 * `sendWindowUpdate` on its stream class, once per process (src/replace-method.ts).
 */
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import { replaceMethodOnce } from './replace-method.ts'

/** The frame type of a window update (the yamux spec's 0x1). */
const WINDOW_UPDATE = 1

/** The stream's fields this uses: private in the library's types, the same in its code. */
interface StreamFields {
  state: StreamState
  recvWindow: number
  recvWindowCapacity: number
  maxStreamWindowSize: number
  epochStart: number
  getRTT: () => number
  getSendFlags: () => number
  sendFrame: (header: { type: number, flag: number, streamID: number, length: number }) => boolean
  streamId: number
}

/**
 * Whether a receiver that has `capacity` of its `window` left (and `flags` to send) sends a window
 * update now.
 */
export function updateDue (window: number, capacity: number, flags: number): boolean {
  return flags !== 0 || window - capacity >= window / 2
}

type SendWindowUpdate = () => void

/**
 * Makes every yamux stream of this process send window updates at half the window (see above).
 * Idempotent; returns whether the replacement is in place.
 */
export function installWindowUpdateHysteresis (): boolean {
  return replaceMethodOnce<SendWindowUpdate>(YamuxStream.prototype, 'sendWindowUpdate', () =>
    function (this: StreamFields): void {
      if (this.state === StreamState.Paused) {
        // As the library: no credit while paused, and the epoch restarts when it resumes.
        this.epochStart = Date.now()
        return
      }
      const flags = this.getSendFlags()
      if (!updateDue(this.recvWindow, this.recvWindowCapacity, flags)) return
      const now = Date.now()
      const rtt = this.getRTT()
      if (flags === 0 && rtt > -1 && now - this.epochStart <= rtt * 4) {
        // Half a window used within 4 round trips: the window limits the rate, so it grows.
        this.recvWindow = Math.min(this.recvWindow * 2, this.maxStreamWindowSize)
      }
      const delta = this.recvWindow - this.recvWindowCapacity
      this.recvWindowCapacity = this.recvWindow
      this.epochStart = now
      this.sendFrame({ type: WINDOW_UPDATE, flag: flags, streamID: this.streamId, length: delta })
    })
}
