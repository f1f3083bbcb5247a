/**
 * What the benchmarks share: the run's progress lines, its JSON lines and its results file
 * (`BenchRun`), starting and stopping processes that print a JSON ready line, a process's RSS from
 * /proc, quantiles and rounding.
 *
 *   const run = new BenchRun('gateway')            // progress: "[bench:gateway] ..." on stderr
 *   const a = await startProc([EDGE_MESH_CLI, 'gateway', '--json', ...], 'gateway A')
 *   run.print(line)                                // one JSON line on stdout
 *   await stopProc(a)                              // SIGTERM, SIGKILL after 15 s
 *   await run.save(lines)                          // bench/results/gateway.json
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { cpus, loadavg, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))

/** The `edge-mesh` command line (peers/edge-mesh.ts). */
export const EDGE_MESH_CLI = join(here, '..', 'peers', 'edge-mesh.ts')

/** Bound on a process's start (its ready line). */
const START_TIMEOUT_MS = 30_000
/** Bound on the wait for an exit after SIGTERM, before SIGKILL. */
const STOP_TIMEOUT_MS = 15_000
/** Lines of a process's stderr kept for error messages. */
const STDERR_LINES = 20

/** `x` rounded to `d` decimals. */
export const round = (x: number, d: number = 1): number => Math.round(x * 10 ** d) / 10 ** d

export const sleep = async (ms: number): Promise<void> => { await new Promise<void>(resolve => { setTimeout(resolve, ms) }) }

/**
 * Quantiles of latency samples (ms), each the sample at index ⌊q·n⌋ of the sorted samples, and
 * the maximum, rounded to 3 decimals; NaN without samples.
 */
export function quantiles (lat: ArrayLike<number>): { p50: number, p99: number, max: number } {
  if (lat.length === 0) return { p50: NaN, p99: NaN, max: NaN }
  const s = Float64Array.from(lat).sort()
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))]
  return { p50: round(at(0.5), 3), p99: round(at(0.99), 3), max: round(s[s.length - 1], 3) }
}

/** The short hash of the commit checked out, if git can tell. */
function gitCommit (): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: here, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return undefined
  }
}

/**
 * One run of benchmark `name`: progress on stderr, JSON lines on stdout, and at the end
 * bench/results/<name>.json with the date, Node version, commit, machine (load average when the
 * run was created), duration and lines.
 */
export class BenchRun {
  readonly name: string
  private readonly started = performance.now()
  private readonly loadavgAtStart = loadavg().map(x => round(x, 2))

  constructor (name: string) {
    this.name = name
  }

  /** `[bench:<name>] msg` on stderr. */
  readonly progress = (msg: string): void => { process.stderr.write(`[bench:${this.name}] ${msg}\n`) }

  /** One result line on stdout. */
  print (line: Record<string, unknown>): void {
    process.stdout.write(JSON.stringify(line) + '\n')
  }

  /** Writes bench/results/<name>.json (`extra` keys go before the duration) and says it is done. */
  async save (lines: Array<Record<string, unknown>>, extra: Record<string, unknown> = {}): Promise<void> {
    const cpu = cpus()
    await mkdir(join(here, 'results'), { recursive: true })
    await writeFile(join(here, 'results', `${this.name}.json`), JSON.stringify({
      date: new Date().toISOString(),
      node: process.version,
      commit: gitCommit(),
      machine: { cores: cpu.length, cpu: cpu[0]?.model, memoryMB: Math.round(totalmem() / 2 ** 20), loadavgAtStart: this.loadavgAtStart },
      ...extra,
      durationS: round((performance.now() - this.started) / 1000),
      results: lines
    }, null, 2) + '\n')
    this.progress(`done in ${Math.round((performance.now() - this.started) / 1000)} s`)
  }
}

// ------------------------------------------------------------------ processes

/** A process started by {@link startProc}, with what its ready line said. */
export interface Proc { child: ChildProcess, http: string, addrs: string[], peerId: string, stderrTail: string[] }

/**
 * Starts `node <argv>`, a process that prints one JSON ready line with `http` (and, for a peer,
 * `addrs` and `peerId`), and resolves once it did. Rejects with the end of its stderr if it exits
 * first or is not ready within 30 s (then it is killed).
 */
export async function startProc (argv: string[], what: string): Promise<Proc> {
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
  const stderrTail: string[] = []
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', l => {
    stderrTail.push(l)
    if (stderrTail.length > STDERR_LINES) stderrTail.shift()
  })
  return await new Promise<Proc>((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${what} did not start in ${START_TIMEOUT_MS / 1000} s:\n${stderrTail.join('\n')}`)) }, START_TIMEOUT_MS)
    const failed = (why: string): void => { clearTimeout(timer); reject(new Error(`${what} ${why}:\n${stderrTail.join('\n')}`)) }
    child.on('error', err => { failed(`could not be started (${err.message})`) })
    child.on('exit', code => { failed(`exited with ${code}`) })
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', line => {
      let ev: { event?: string, http?: string, addrs?: string[], peerId?: string }
      try { ev = JSON.parse(line) } catch { return }
      if (ev.event === 'ready' && typeof ev.http === 'string') {
        clearTimeout(timer)
        child.removeAllListeners('exit')
        resolve({ child, http: ev.http, addrs: ev.addrs ?? [], peerId: ev.peerId ?? '', stderrTail })
      }
    })
  })
}

/** Sends `signal` (SIGTERM by default) and waits for the exit; SIGKILLs the process after 15 s. */
export async function stopProc (p: Proc, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return
  await new Promise<void>(resolve => {
    const t = setTimeout(() => { p.child.kill('SIGKILL') }, STOP_TIMEOUT_MS)
    p.child.once('exit', () => { clearTimeout(t); resolve() })
    p.child.kill(signal)
  })
}

/**
 * Runs `cmd args` (stdout piped, stderr inherited) and resolves with the last line of its stdout
 * parsed as JSON; rejects if it exits with another status than 0 (it is killed after `timeoutMs`).
 */
export async function lastJsonLine<T = Record<string, unknown>> (cmd: string, args: string[], what: string, timeoutMs: number = 10 * 60_000): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    const timer = setTimeout(() => { child.kill('SIGKILL') }, timeoutMs)
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.on('error', err => { clearTimeout(timer); reject(err) })
    child.on('exit', code => {
      clearTimeout(timer)
      if (code !== 0) { reject(new Error(`${what} exited with ${code}`)); return }
      try { resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '') as T) } catch (err) { reject(err as Error) }
    })
  })
}

/** Resident set size of a process, MB (Linux /proc); NaN if it cannot be read. */
export async function rssMB (pid: number | undefined): Promise<number> {
  if (pid === undefined) return NaN
  try {
    const m = /VmRSS:\s*(\d+)\s*kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))
    return m !== null ? round(Number(m[1]) / 1024) : NaN
  } catch {
    return NaN
  }
}

/** Samples a process's RSS every `everyMs` until stopped; `stop` resolves with the peak, MB. */
export function rssSampler (pid: number | undefined, everyMs: number = 250): { stop: () => Promise<number> } {
  let peak = 0
  let on = true
  const loop = (async () => {
    while (on) {
      peak = Math.max(peak, await rssMB(pid) || 0)
      await sleep(everyMs)
    }
  })()
  return { stop: async () => { on = false; await loop; return round(peak) } }
}
