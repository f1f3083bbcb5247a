/**
 * Settings shared by the fuzz tests (test/fuzz/*.test.ts), and their hang guard.
 *
 *   FUZZ_RUNS     inputs per decoder property (default 500: the CI budget; `npm run fuzz` uses 10000)
 *   FUZZ_SEED     fast-check seed, to replay a failure (fast-check prints the seed and path of every
 *                 failure); FUZZ_PATH replays one counterexample directly
 *   FUZZ_HANG_MS  how long one input may keep a decoder busy before the process is stopped with the
 *                 input printed (default 20000)
 *
 * The hang guard: a synchronous decoder stuck in a loop blocks the event loop, so no timer in the
 * test could report it. A watchdog worker thread watches a counter in shared memory that the test
 * bumps before each input (`HangGuard.watch`), along with a copy of the input; if one input stays
 * in flight longer than FUZZ_HANG_MS, the worker writes the input to stderr itself (fd 2, not
 * through the blocked main thread) and kills the process, so ava reports the file as failed with
 * the input shown instead of stalling until its own timeout. Asynchronous cases (HTTP, WebSocket)
 * also race each input against a per-input timeout (`withTimeout`), which fails the property with
 * the input as its counterexample.
 */
import { Worker } from 'node:worker_threads'
import type fc from 'fast-check'

function positiveInt (name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`)
  return n
}

/** Inputs per decoder property. */
export const FUZZ_RUNS = positiveInt('FUZZ_RUNS', 500)
/** How long one input may run before the hang guard stops the process, ms. */
export const FUZZ_HANG_MS = positiveInt('FUZZ_HANG_MS', 20_000)
/** The per-input bound of asynchronous cases, ms (an input that needs longer fails the property). */
export const FUZZ_INPUT_TIMEOUT_MS = Math.min(FUZZ_HANG_MS, 10_000)

/** fast-check parameters of a fuzz property: FUZZ_RUNS runs, FUZZ_SEED / FUZZ_PATH when given. */
export function fuzzParameters<T> (numRuns: number = FUZZ_RUNS): fc.Parameters<T> {
  // The property's own error message in the report (ava shows the message, not the cause).
  const params: fc.Parameters<T> = { numRuns, includeErrorInReport: true }
  const seed = process.env.FUZZ_SEED
  if (seed !== undefined && seed !== '') {
    const n = Number(seed)
    if (!Number.isInteger(n)) throw new Error(`FUZZ_SEED must be an integer, got ${JSON.stringify(seed)}`)
    params.seed = n
    const path = process.env.FUZZ_PATH
    if (path !== undefined && path !== '') params.path = path
  }
  return params
}

/** The largest input copy the guard keeps for its report (longer ones are cut, which the report says). */
const MAX_REPORTED_BYTES = 64 * 1024

const WATCHDOG_SOURCE = `
const { workerData } = require('node:worker_threads')
const fs = require('node:fs')
const ctl = new Int32Array(workerData.ctl)
const buf = new Uint8Array(workerData.buf)
let lastSeq = -1
let since = Date.now()
setInterval(() => {
  const seq = Atomics.load(ctl, 0)
  const armed = Atomics.load(ctl, 1) === 1
  if (!armed || seq !== lastSeq) { lastSeq = seq; since = Date.now(); return }
  if (Date.now() - since < workerData.hangMs) return
  const len = Atomics.load(ctl, 2)
  const cut = Atomics.load(ctl, 3) === 1
  const text = Atomics.load(ctl, 4) === 1
  const bytes = buf.slice(0, len)
  const shown = text ? JSON.stringify(Buffer.from(bytes).toString('utf8')) : 'Uint8Array.from([' + Array.from(bytes).join(',') + '])'
  fs.writeSync(2, '\\nfuzz hang guard: ' + workerData.label + ': one input has run for over ' + workerData.hangMs +
    ' ms (FUZZ_HANG_MS); stopping the process. Input' + (cut ? ' (first ' + len + ' bytes)' : '') + ': ' + shown + '\\n')
  process.kill(process.pid, 'SIGKILL')
}, 200)
`

/** A watchdog over the inputs of one test file (see the module doc). */
export class HangGuard {
  private readonly ctl: Int32Array
  private readonly buf: Uint8Array
  private readonly worker: Worker
  private readonly utf8 = new TextEncoder()

  constructor (label: string, hangMs: number = FUZZ_HANG_MS) {
    const ctl = new SharedArrayBuffer(5 * 4)
    const buf = new SharedArrayBuffer(MAX_REPORTED_BYTES)
    this.ctl = new Int32Array(ctl)
    this.buf = new Uint8Array(buf)
    this.worker = new Worker(WATCHDOG_SOURCE, { eval: true, workerData: { ctl, buf, label, hangMs } })
    // The watchdog never keeps the process alive.
    this.worker.unref()
  }

  private arm (input: Uint8Array | string): void {
    let len: number
    let cut: boolean
    if (typeof input === 'string') {
      const r = this.utf8.encodeInto(input, this.buf)
      len = r.written
      cut = r.read < input.length
    } else {
      len = Math.min(input.length, this.buf.length)
      cut = len < input.length
      this.buf.set(input.subarray(0, len))
    }
    Atomics.store(this.ctl, 2, len)
    Atomics.store(this.ctl, 3, cut ? 1 : 0)
    Atomics.store(this.ctl, 4, typeof input === 'string' ? 1 : 0)
    Atomics.add(this.ctl, 0, 1)
    Atomics.store(this.ctl, 1, 1)
  }

  private disarm (): void {
    Atomics.store(this.ctl, 1, 0)
  }

  /** Runs `fn` with `input` as the input in flight. */
  watch<T> (input: Uint8Array | string, fn: () => T): T {
    this.arm(input)
    try {
      return fn()
    } finally {
      this.disarm()
    }
  }

  /** Runs the asynchronous `fn` with `input` in flight, failing if it takes longer than `timeoutMs`. */
  async watchAsync<T> (input: Uint8Array | string, what: string, fn: () => Promise<T>, timeoutMs: number = FUZZ_INPUT_TIMEOUT_MS): Promise<T> {
    this.arm(input)
    try {
      return await withTimeout(fn(), timeoutMs, what)
    } finally {
      this.disarm()
    }
  }

  async stop (): Promise<void> {
    await this.worker.terminate()
  }
}

/** `p`, or a rejection naming `what` after `ms`. */
export async function withTimeout<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`${what}: no answer within ${ms} ms (hang)`)) }, ms)
  })
  try {
    return await Promise.race([p, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Throws an Error with `message()` unless `cond` holds (the message is built only on failure). */
export function check (cond: boolean, message: () => string): asserts cond {
  if (!cond) throw new Error(message())
}

/** JSON of `v` for a failure message, cut to `max` characters; never throws. */
export function shortJson (v: unknown, max: number = 400): string {
  let s: string
  try {
    s = JSON.stringify(v) ?? String(v)
  } catch {
    s = '(not printable as JSON)'
  }
  return s.length > max ? `${s.slice(0, max)}… (${s.length} characters)` : s
}

/** Counts of named outcomes, to show (and assert) that a property exercised every path it means to. */
export class Outcomes {
  readonly counts = new Map<string, number>()

  add (name: string): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + 1)
  }

  get (name: string): number {
    return this.counts.get(name) ?? 0
  }

  toString (): string {
    return [...this.counts].sort(([a], [b]) => a < b ? -1 : 1).map(([k, n]) => `${k}=${n}`).join(' ')
  }
}
