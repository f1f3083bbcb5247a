/**
 * A worker thread of bench:mesh's mesh-propagation scenario: it hosts some of the peers (mesh
 * peers and raw gossipsub peers alike) and runs, on request of the main thread, the parts of the
 * scenario that concern them: start and mesh checks, the writer's timed loop, the latency
 * listeners, the raw replay, and counters.
 *
 * Times crossing threads are `hr()`: the process's monotonic clock in ms, the same in every thread.
 *
 * Protocol: the main thread posts `{ id, op, ...args }`; the worker answers `{ ...result, id, ok: true }`
 * (a result's own `id` or `ok` field cannot override the answer's) or `{ id, ok: false, error }`.
 */
import { hash } from 'node:crypto'
import { parentPort, workerData } from 'node:worker_threads'
import { PerformanceObserver, performance } from 'node:perf_hooks'
import { createMeshPeer, regionTopic, type MeshPeer, type MeshStats } from '@edge-mesh/mesh'
import { prng } from '@edge-mesh/testkit'

export const REGION = 'bench'
export const TOPIC = regionTopic(REGION)
export const RAW_TOPIC = '/edge-mesh-bench/raw'
export const SENSORS = 10_000
/** Interval of the writer's timer loop, ms: the readings due are written with one putMany per tick. */
export const TICK_MS = 10

/** The process's monotonic clock, ms (the same clock in every worker thread). */
export const hr = (): number => Number(process.hrtime.bigint()) / 1e6

export type Kind = 'mesh' | 'raw'

/** A frame the writer's mesh peer published. */
export interface FrameRecord {
  /** hr() when published. */
  at: number
  size: number
  /** Readings in it (the putMany batches written since the previous frame). */
  readings: number
  /** Those putMany batches: [hr() of the put, readings]. */
  batches: Array<[number, number]>
  key: string
}

/** What one receiving peer measured: latency samples and, per frame, the validator's timing. */
export interface ReceiverReport {
  /** The receiving peer's index. */
  index: number
  /** Raw only: publish → receive, ms, one sample per frame weighted by the readings the frame stood for. */
  lat: Float64Array
  weight: Float64Array
  /** Raw only: the same, unweighted. */
  batchLat: Float64Array
  /** Frames received while recording. */
  seen: number
  /** Mesh only: per frame received, [frame key, hr() at the validator, ms in the validator]. */
  validations: Array<[string, number, number]>
  /** Gossip messages this peer received on any topic while recording, duplicates included. */
  msgsIn: number
}

type TopicValidator = NonNullable<ReturnType<MeshPeer['node']['services']['pubsub']['topicValidators']['get']>>
const ACCEPT = 'accept' as unknown as Awaited<ReturnType<TopicValidator>>

/**
 * A key for a frame's bytes, to match what a receiver validates with what the writer published.
 * Native (SHA-1 in node:crypto): it runs in every receiver's validator, inside the timed work.
 */
export function frameKey (b: Uint8Array): string {
  return hash('sha1', b, 'base64')
}

/** A 64-bit FNV-style hash of bytes, as `length:h1:h2` (for the views' digest). */
export function bytesKey (b: Uint8Array): string {
  let h1 = 0x811c9dc5
  let h2 = 0x01000193
  for (let i = 0; i < b.length; i++) {
    h1 = Math.imul(h1 ^ b[i], 16777619)
    h2 = Math.imul(h2 ^ b[i], 2246822519)
  }
  return `${b.length}:${h1 >>> 0}:${h2 >>> 0}`
}

/** A growable pair of sample arrays. */
class Grow {
  a: Float64Array = new Float64Array(1024)
  b: Float64Array = new Float64Array(1024)
  n = 0
  add (x: number, y: number): void {
    if (this.n === this.a.length) {
      const g = (v: Float64Array): Float64Array => { const w = new Float64Array(v.length * 2); w.set(v); return w }
      this.a = g(this.a)
      this.b = g(this.b)
    }
    this.a[this.n] = x
    this.b[this.n++] = y
  }

  /** The samples so far; empties this. */
  take (): [Float64Array, Float64Array] {
    const out: [Float64Array, Float64Array] = [this.a.slice(0, this.n), this.b.slice(0, this.n)]
    this.n = 0
    return out
  }
}

const meshPeersOf = (p: MeshPeer, topic: string): string[] =>
  (p.node.services.pubsub as unknown as { getMeshPeers: (topic: string) => string[] }).getMeshPeers(topic)

const sleep = async (ms: number): Promise<void> => { await new Promise<void>(resolve => { setTimeout(resolve, ms) }) }

async function waitFor (what: string, cond: () => boolean, timeoutMs: number, everyMs: number = 20): Promise<void> {
  const t0 = performance.now()
  while (!cond()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(everyMs)
  }
}

// ------------------------------------------------------------------ state of this worker

const peers = new Map<string, MeshPeer>()
const key = (kind: Kind, index: number): string => `${kind}:${index}`
const peer = (kind: Kind, index: number): MeshPeer => {
  const p = peers.get(key(kind, index))
  if (p === undefined) throw new Error(`peer ${kind} ${index} is not in this worker`)
  return p
}
const hosted = (kind: Kind): Array<[number, MeshPeer]> =>
  [...peers].filter(([k]) => k.startsWith(`${kind}:`)).map(([k, p]) => [Number(k.split(':')[1]), p])

interface Receiver {
  lat: Grow
  batch: Grow
  seen: number
  validations: Array<[string, number, number]>
  applyMs: number
  msgsIn: number
  /** Raw only: readings per frame of the run being replayed (by the frame's index), and the synthetic work per reading, ms. */
  readings?: number[]
  workMs: number
}
const receivers = new Map<string, Receiver>()
let recording = false
/** Garbage-collection pauses on this thread while recording: [start on the hr() clock, ms]. */
const gcPauses: Array<[number, number]> = []
{
  const offset = hr() - performance.now()
  new PerformanceObserver(list => {
    if (recording) for (const e of list.getEntries()) gcPauses.push([e.startTime + offset, e.duration])
  }).observe({ entryTypes: ['gc'] })
}
let eluStart = performance.eventLoopUtilization()

/** The writer side of a mesh run (reset by each `write`). */
const writerRec = { frames: [] as FrameRecord[], batches: [] as Array<[number, number]>, pendingSince: -1, written: 0, writtenAtFrame: 0, flush: new Grow() }
/** Whether the writer's publish is wrapped already (once per peer: runs may come one after another). */
let writerWrapped = false

/**
 * Calls `batch(from, to, now)` every TICK_MS with the readings due at `rate` a second since the
 * start (numbers `from` up to `to`), until `rate × seconds` are written or three times the time
 * has passed.
 */
async function paced (rate: number, seconds: number, batch: (from: number, to: number, now: number) => void): Promise<void> {
  const total = Math.round(rate * seconds)
  const start = hr()
  let written = 0
  await new Promise<void>(resolve => {
    const tick = (): void => {
      const now = hr()
      const due = Math.min(total, Math.floor((now - start) * rate / 1000))
      if (due > written) {
        batch(written, due, now)
        written = due
      }
      if (written >= total || now - start > seconds * 3000) resolve()
      else setTimeout(tick, TICK_MS)
    }
    setTimeout(tick, TICK_MS)
  })
}

// ------------------------------------------------------------------ operations

type Args = Record<string, unknown>

const ops: Record<string, (a: Args) => Promise<Record<string, unknown>>> = {
  async start (a) {
    const kind = a.kind as Kind
    // Anti-entropy off only for the --mesh-no-apply diagnostic: there the views fall behind, and a
    // periodic round would carry the whole run's readings at once.
    const p = await createMeshPeer({ regions: [REGION], bootstrap: a.bootstrap as string[], ...(a.noAntiEntropy === true ? { syncIntervalMs: 0 } : {}) })
    if (kind === 'raw') p.node.services.pubsub.subscribe(RAW_TOPIC)
    peers.set(key(kind, a.index as number), p)
    return { addr: p.addrs()[0] }
  },

  /** Every hosted peer of `kind` sees as many subscribers as it has neighbours, and has a gossip mesh. */
  async formed (a) {
    const kind = a.kind as Kind
    const degree = a.degree as Record<string, number>
    const topic = kind === 'mesh' ? TOPIC : RAW_TOPIC
    await waitFor(`the gossipsub mesh on ${topic}`, () => hosted(kind).every(([i, p]) =>
      p.node.services.pubsub.getSubscribers(topic).length >= degree[i] && meshPeersOf(p, topic).length >= Math.min(degree[i], 1)), 30_000)
    return {}
  },

  async put (a) {
    peer('mesh', a.index as number).region(REGION).put(a.sensor as string, a.value as number)
    return {}
  },

  /** Whether every hosted mesh peer but `except` has `sensor`. */
  async has (a) {
    return { present: hosted('mesh').every(([i, p]) => i === a.except || p.region(REGION).get(a.sensor as string) !== undefined) }
  },

  /**
   * Installs the latency listeners on every hosted peer of `kind` but the writer, once; called
   * again (the next round), it only sets what the raw validators read: the readings per frame of
   * the run to replay, and the synthetic work.
   */
  async arm (a) {
    const kind = a.kind as Kind
    // Optional synthetic work per reading in the frame (busy-waiting), standing in for an
    // apply of that cost: how much per-reading work the transport leaves room for.
    const workMs = (a.workUs as number | undefined ?? 0) / 1000
    for (const [i, p] of hosted(kind)) {
      if (i === a.writer) continue
      const armed = receivers.get(key(kind, i))
      if (armed !== undefined) {
        armed.readings = a.readings as number[] | undefined
        armed.workMs = workMs
        continue
      }
      const rec: Receiver = { lat: new Grow(), batch: new Grow(), seen: 0, validations: [], applyMs: 0, msgsIn: 0, readings: a.readings as number[] | undefined, workMs }
      receivers.set(key(kind, i), rec)
      // Every message gossipsub hands to its validation, duplicates included (they are dropped there).
      const gs = p.node.services.pubsub as unknown as { handleReceivedMessage: (...args: unknown[]) => Promise<void> }
      const handle = gs.handleReceivedMessage.bind(gs)
      gs.handleReceivedMessage = async (...args: unknown[]) => {
        if (recording) rec.msgsIn++
        await handle(...args)
      }
      const validators = p.node.services.pubsub.topicValidators
      if (kind === 'mesh') {
        const orig = validators.get(TOPIC)
        if (orig === undefined) throw new Error('the mesh peer has no validator on its region topic')
        // Synchronous, as the mesh's own validator is. When it returns, every reading of the frame
        // is in the view (visible to get(), 'change' listeners already called).
        validators.set(TOPIC, (from, msg) => {
          const t0 = hr()
          // --mesh-no-apply: accept unapplied (a diagnostic; the views fall behind).
          const result = a.noApply === true ? ACCEPT : orig(from, msg)
          const t1 = hr()
          if (recording) {
            rec.applyMs += t1 - t0
            rec.validations.push([frameKey(msg.data), t0, t1 - t0])
            rec.seen++
          }
          return result
        })
      } else {
        validators.set(RAW_TOPIC, (_from, msg) => {
          const view = new DataView(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength)
          const { readings, workMs } = rec
          if (workMs > 0 && readings !== undefined) {
            const k = view.getUint32(8)
            const until = hr() + workMs * (k < readings.length ? readings[k] : 0)
            while (hr() < until) { /* the synthetic apply */ }
          }
          const now = hr()
          const t = view.getFloat64(0)
          if (t >= 0 && recording && readings !== undefined) {
            rec.lat.add(now - t, readings[view.getUint32(8)])
            rec.batch.add(now - t, 1)
            rec.seen++
          } else if (t < 0) {
            rec.seen++
          }
          return ACCEPT
        })
      }
    }
    return {}
  },

  async record (a) {
    recording = a.on as boolean
    if (recording) eluStart = performance.eventLoopUtilization()
    return {}
  },

  async seen (a) {
    const kind = a.kind as Kind
    let n = 0
    const perPeer: number[] = []
    let applyMs = 0
    for (const [k, r] of receivers) if (k.startsWith(`${kind}:`)) { n += r.seen; perPeer.push(r.seen); applyMs += r.applyMs }
    return { seen: n, perPeer, applyMs }
  },

  async resetSeen (a) {
    for (const [k, r] of receivers) if (k.startsWith(`${a.kind as Kind}:`)) r.seen = 0
    return {}
  },

  async elu () {
    return { elu: performance.eventLoopUtilization(eluStart).utilization }
  },

  /** The writer's timed loop: `rate` readings a second for `seconds`, one putMany per tick. */
  async write (a) {
    const rate = a.rate as number
    const seconds = a.seconds as number
    const w = peer('mesh', a.writer as number)
    const writer = w.region(REGION)
    const rnd = prng(a.seed as number | undefined ?? 7)
    const sensors = Array.from({ length: SENSORS }, (_, i) => `line-${i % 50}/sensor-${i}`)
    Object.assign(writerRec, { frames: [], batches: [], pendingSince: -1, written: 0, writtenAtFrame: 0 })
    writerRec.flush.take()
    const ps = w.node.services.pubsub
    if (!writerWrapped) {
      const origPublish = ps.publish.bind(ps)
      ps.publish = async (topic: string, data?: Uint8Array) => {
        if (topic === TOPIC && recording && data !== undefined) {
          const now = hr()
          writerRec.frames.push({ at: now, size: data.length, readings: writerRec.batches.reduce((n, b) => n + b[1], 0), batches: writerRec.batches, key: frameKey(data) })
          writerRec.batches = []
          if (writerRec.pendingSince >= 0) writerRec.flush.add(now - writerRec.pendingSince, 1)
          writerRec.pendingSince = -1
          writerRec.writtenAtFrame = writerRec.written
        }
        return origPublish(topic, data)
      }
      writerWrapped = true
    }
    const schedLag = new Grow()
    let putMs = 0
    const start = hr()
    await paced(rate, seconds, (from, to, now) => {
      schedLag.add(now - (start + (from + 1) * 1000 / rate), 1)
      const batch = new Array<{ sensor: string, value: number }>(to - from)
      const t = hr()
      for (let i = 0; i < batch.length; i++) batch[i] = { sensor: sensors[Math.floor(rnd() * SENSORS)], value: t }
      if (writerRec.pendingSince < 0) writerRec.pendingSince = t
      writerRec.batches.push([t, batch.length])
      writer.putMany(batch)
      putMs += hr() - t
      writerRec.written = to
    })
    const writeMs = hr() - start
    // Let the last flush window pass before handing over the frame list.
    await sleep(50)
    const [lag] = schedLag.take()
    const [flush] = writerRec.flush.take()
    return { written: writerRec.written, writeMs, putMs, schedLag: lag, flush, frames: writerRec.frames, start }
  },

  /**
   * Unmeasured writes before the measured run, so that both runs are measured with their code
   * compiled by V8's optimising tiers: the writer's loop at the same rate, over the same sensors in
   * another order. Returns its frames' sizes and times, for the raw run's own warm-up.
   */
  async warm (a) {
    const w = peer('mesh', a.writer as number)
    const writer = w.region(REGION)
    const rnd = prng(13)
    const sensors = Array.from({ length: SENSORS }, (_, i) => `line-${i % 50}/sensor-${i}`)
    const ps = w.node.services.pubsub
    const publish = ps.publish
    const frames: Array<{ t: number, size: number }> = []
    const start = hr()
    ps.publish = async (topic: string, data?: Uint8Array) => {
      if (topic === TOPIC && data !== undefined) frames.push({ t: hr() - start, size: data.length })
      return publish.call(ps, topic, data)
    }
    try {
      await paced(a.rate as number, a.seconds as number, (from, to) => {
        const t = hr()
        writer.putMany(Array.from({ length: to - from }, () => ({ sensor: sensors[Math.floor(rnd() * SENSORS)], value: t })))
      })
      await sleep(50)
    } finally {
      ps.publish = publish
    }
    return { frames }
  },

  /** The raw baseline's publisher: the mesh run's frames (sizes, relative times) as plain bytes. */
  async replay (a) {
    const frames = a.frames as Array<{ t: number, size: number }>
    const ps = peer('raw', a.writer as number).node.services.pubsub
    const fill = prng(11)
    const payload = (size: number, t: number, index: number): Uint8Array => {
      const b = new Uint8Array(Math.max(16, size))
      for (let i = 16; i < b.length; i++) b[i] = Math.floor(fill() * 256)
      const view = new DataView(b.buffer)
      view.setFloat64(0, t)
      view.setUint32(8, index)
      return b
    }
    if (a.warm === true) {
      for (let k = 0; k < 20; k++) {
        await ps.publish(RAW_TOPIC, payload(100, -1, 0))
        await sleep(10)
      }
      return {}
    }
    const start = hr()
    await new Promise<void>(resolve => {
      let i = 0
      const next = (): void => {
        while (i < frames.length && hr() - start >= frames[i].t) {
          ps.publish(RAW_TOPIC, payload(frames[i].size, hr(), i)).catch(() => {})
          i++
        }
        if (i >= frames.length) resolve()
        else setTimeout(next, Math.max(0, frames[i].t - (hr() - start)))
      }
      next()
    })
    return {}
  },

  async collect (a) {
    const kind = a.kind as Kind
    const out: ReceiverReport[] = []
    for (const [k, r] of receivers) {
      if (!k.startsWith(`${kind}:`)) continue
      const [lat, weight] = r.lat.take()
      const [batchLat] = r.batch.take()
      out.push({ index: Number(k.split(':')[1]), lat, weight, batchLat, seen: r.seen, validations: r.validations, msgsIn: r.msgsIn })
      r.validations = []
      r.msgsIn = 0
      r.applyMs = 0
    }
    // The pauses since the last collect: this run's (mesh or raw) on this thread.
    return { reports: out, gc: gcPauses.splice(0) }
  },

  /** Per hosted mesh peer: its view's size and an order-free digest of (sensor, t, writer). */
  async digest () {
    const out: Record<string, string> = {}
    for (const [i, p] of hosted('mesh')) {
      const r = p.region(REGION)
      let h1 = 0
      let h2 = 0
      let n = 0
      for (const s of r.list()) {
        const w = r.winner(s)
        const k = bytesKey(new TextEncoder().encode(`${s}\u0000${w?.t}\u0000${w?.writer}`)).split(':')
        h1 = (h1 ^ Number(k[1])) >>> 0
        h2 = (h2 ^ Number(k[2])) >>> 0
        n++
      }
      out[i] = `${n}:${h1}:${h2}`
    }
    return { digests: out }
  },

  async stats (a) {
    const sum: Record<string, number> = {}
    for (const [, p] of hosted(a.kind as Kind)) {
      for (const [k, v] of Object.entries(p.stats() as MeshStats & Record<string, unknown>)) {
        if (typeof v === 'number') sum[k] = (sum[k] ?? 0) + v
      }
    }
    return { stats: sum }
  },

  async stop () {
    await Promise.all([...peers.values()].map(async p => p.stop().catch(() => {})))
    peers.clear()
    return {}
  }
}

/** Everything an error says (an error's stack can be empty, and some carry only a name or a code). */
function describeError (err: unknown): string {
  if (!(err instanceof Error)) return `a thrown ${typeof err}: ${String(err)}`
  const code = (err as Error & { code?: unknown }).code
  const head = `${err.name}${code !== undefined ? ` (${String(code)})` : ''}: ${err.message === '' ? '(no message)' : err.message}`
  return err.stack !== undefined && err.stack !== '' && err.stack.includes(err.message) ? `${head}\n${err.stack.split('\n').slice(1).join('\n')}` : head
}

if (parentPort !== null && workerData?.benchMeshWorker === true) {
  const port = parentPort
  port.on('message', (m: { id: number, op: string } & Args) => {
    const op = ops[m.op]
    if (op === undefined) { port.postMessage({ id: m.id, ok: false, error: `unknown op ${m.op}` }); return }
    op(m).then(r => { port.postMessage({ ...r, id: m.id, ok: true }) }, (err: unknown) => {
      port.postMessage({ id: m.id, ok: false, error: describeError(err) })
    })
  })
}
