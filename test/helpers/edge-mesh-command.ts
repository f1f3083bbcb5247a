/**
 * `edge-mesh <args>` (peers/edge-mesh.ts) as a child process whose output is read as text, for
 * tests of the command line itself: help, usage errors (status 2), start-up failures (status 1),
 * the ready line with or without --json, and the exit after a signal.
 *
 *   const help = await new EdgeMeshCommand(t, ['gateway', '--help']).result()   // { code, signal, stdout, stderr }
 *   const gw = new EdgeMeshCommand(t, ['gateway', '--region', 'a', '--http', '127.0.0.1:0'])
 *   const ready = await gw.line(0)
 *   gw.child.kill('SIGTERM')
 *   t.is((await gw.result()).code, 0)
 *
 * The process plumbing (stderr in failure messages, the SIGKILL of a child that would outlive
 * the test process) is ChildPeer's (child-peer.ts). A child still running when the test ends is
 * SIGKILLed at teardown. Every wait is bounded.
 */
import { setTimeout as delay } from 'node:timers/promises'
import { ChildPeer, EDGE_MESH_SCRIPT, type Exit, type TeardownHost } from './child-peer.ts'

/** Bound on every wait (a stdout line, the exit), unless told otherwise. */
const DEFAULT_TIMEOUT_MS = 30_000

/** How the command exited, with everything it printed. */
export interface CommandResult extends Exit {
  stdout: string
  stderr: string
}

export interface EdgeMeshCommandOptions {
  /** Environment variables set for the child, over this process's environment. */
  env?: Record<string, string>
  /** Bound on each wait. @default 30000 */
  timeoutMs?: number
}

/** A running `edge-mesh` command; spawned by the constructor. */
export class EdgeMeshCommand extends ChildPeer {
  private readonly timeoutMs: number
  private stdoutText = ''

  constructor (t: TeardownHost, args: string[], opts: EdgeMeshCommandOptions = {}) {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
    super({ kind: 'edge-mesh', name: args.join(' '), argv: [EDGE_MESH_SCRIPT, ...args], env: opts.env, readyTimeoutMs: timeoutMs, stopTimeoutMs: timeoutMs })
    this.timeoutMs = timeoutMs
    this.child.stdout.on('data', (c: string) => { this.stdoutText += c })
    t.teardown(async () => { if (this.running) await this.kill('SIGKILL') })
  }

  /** Everything the child printed on stdout so far. */
  get stdout (): string {
    return this.stdoutText
  }

  /**
   * Resolves with stdout line `n` (0: the first) once it is complete; rejects, quoting stderr, if
   * the child exits before printing it or after the bound.
   */
  async line (n: number, timeoutMs: number = this.timeoutMs): Promise<string> {
    const end = Date.now() + timeoutMs
    for (;;) {
      const lines = this.stdoutText.split('\n')
      if (lines.length > n + 1) return lines[n]
      if (!this.running) throw new Error(`${this.label()}: exited before stdout line ${n}${this.diagnostics()}`)
      if (Date.now() > end) throw new Error(`${this.label()}: no stdout line ${n} within ${timeoutMs} ms${this.diagnostics()}`)
      await delay(25)
    }
  }

  /**
   * Waits for the child to exit by itself (after a signal sent with `child.kill`, or at the end of
   * its work) and resolves with how it exited and all it printed; SIGKILLs it and rejects if it
   * still runs after the bound.
   */
  async result (timeoutMs: number = this.timeoutMs): Promise<CommandResult> {
    try {
      const exit = await this.waitForExit(timeoutMs)
      return { ...exit, stdout: this.stdoutText, stderr: this.stderr }
    } catch (err) {
      await this.kill('SIGKILL').catch(() => {})
      throw err
    }
  }
}
