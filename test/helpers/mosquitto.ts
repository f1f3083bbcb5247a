/**
 * Starts a real mosquitto broker (Debian's package) on a free loopback port, for the MQTT tests.
 *
 *   const broker = await startMosquitto({ maxInflight: 10 })
 *   t.teardown(() => broker.stop())
 *   const client = mqtt.connect(broker.url)            // mqtt://127.0.0.1:<port>
 *
 * The broker runs with `persistence false` (sessions live in memory as long as the process does),
 * anonymous access, `max_inflight_messages` as asked and a large `max_queued_messages`, so that a
 * test that keeps a consumer away does not lose QoS 1 messages. Every broker started is tracked and
 * killed (SIGKILL) when the test process exits, even if a test forgot to stop it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'

export interface MosquittoInit {
  /** `max_inflight_messages`: QoS 1 messages the broker sends a client before it waits for PUBACKs. @default 20 */
  maxInflight?: number
  /** Listen on this port instead of a free one (to restart a broker where clients expect it). */
  port?: number
}

export interface Mosquitto {
  /** `mqtt://127.0.0.1:<port>` */
  url: string
  port: number
  /** SIGTERM, then SIGKILL if it has not exited within a bound; removes the config dir. Idempotent. */
  stop: () => Promise<void>
}

const HOST = '127.0.0.1'
/** Bound on the wait for the broker to accept TCP connections. */
const READY_TIMEOUT_MS = 10_000
/** Bound on the wait for the broker to exit after SIGTERM, before SIGKILL. */
const TERM_TIMEOUT_MS = 3_000
/** Bound on the wait for the exit after SIGKILL. */
const KILL_TIMEOUT_MS = 3_000
/** A port taken between our probe and the broker's bind is retried on another port this often. */
const START_ATTEMPTS = 3
const STDERR_TAIL = 2000

const running = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

/** The mosquitto binary: from PATH, or Debian's /usr/sbin/mosquitto (not on every user's PATH). */
export function findMosquitto (): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v mosquitto'], { encoding: 'utf8' })
  const fromPath = found.status === 0 ? found.stdout.trim() : ''
  if (fromPath !== '') return fromPath
  return fs.existsSync('/usr/sbin/mosquitto') ? '/usr/sbin/mosquitto' : undefined
}

/** A loopback port that was free a moment ago (bind port 0, read it, close). */
export async function freePort (): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, HOST, () => { resolve() })
  })
  const address = server.address()
  await new Promise<void>(resolve => { server.close(() => { resolve() }) })
  if (address === null || typeof address === 'string') throw new Error('could not read the port of a probe server')
  return address.port
}

/** Starts mosquitto on a free loopback port; resolves once it accepts TCP connections. */
export async function startMosquitto (opts: MosquittoInit = {}): Promise<Mosquitto> {
  const bin = findMosquitto()
  if (bin === undefined) {
    throw new Error('mosquitto is not installed: run `bash .ci/run` (it installs it) or ' +
      '`apt-get update && apt-get install -y --no-install-recommends mosquitto`')
  }
  const maxInflight = opts.maxInflight ?? 20
  if (!Number.isSafeInteger(maxInflight) || maxInflight < 0) throw new Error(`maxInflight must be an integer >= 0, got ${maxInflight}`)
  let lastError: Error | undefined
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    try {
      return await startOnce(bin, opts.port ?? await freePort(), maxInflight)
    } catch (err) {
      lastError = err as Error
    }
  }
  throw lastError ?? new Error('mosquitto did not start')
}

async function startOnce (bin: string, port: number, maxInflight: number): Promise<Mosquitto> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'em-mosquitto-'))
  const config = path.join(dir, 'mosquitto.conf')
  await fsp.writeFile(config, [
    `listener ${port} ${HOST}`,
    'allow_anonymous true',
    'persistence false',
    `max_inflight_messages ${maxInflight}`,
    'max_queued_messages 100000',
    'log_dest stderr',
    ''
  ].join('\n'))

  const child = spawn(bin, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] })
  running.add(child)
  let stderr = ''
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_TAIL)
  })
  const exited = new Promise<void>(resolve => {
    child.once('exit', () => { running.delete(child); resolve() })
  })
  let spawnError: Error | undefined
  child.once('error', err => { spawnError = err })

  let stopped: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        if (!await within(exited, TERM_TIMEOUT_MS)) {
          child.kill('SIGKILL')
          await within(exited, KILL_TIMEOUT_MS)
        }
      }
      await fsp.rm(dir, { recursive: true, force: true })
    })()
    return await stopped
  }

  const end = Date.now() + READY_TIMEOUT_MS
  for (;;) {
    if (spawnError !== undefined || child.exitCode !== null || child.signalCode !== null) {
      await stop()
      throw new Error(`mosquitto exited before accepting connections on port ${port}` +
        `${spawnError !== undefined ? ` (${spawnError.message})` : ''}; stderr: ${stderr}`)
    }
    if (await canConnect(port)) break
    if (Date.now() > end) {
      await stop()
      throw new Error(`mosquitto did not accept connections on port ${port} within ${READY_TIMEOUT_MS} ms; stderr: ${stderr}`)
    }
    await delay(25)
  }
  return { url: `mqtt://${HOST}:${port}`, port, stop }
}

/** True if `p` settles within `ms`. */
async function within (p: Promise<void>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<boolean>(resolve => { timer = setTimeout(() => { resolve(false) }, ms) })
  try {
    return await Promise.race([p.then(() => true), timeout])
  } finally {
    clearTimeout(timer)
  }
}

async function canConnect (port: number): Promise<boolean> {
  return await new Promise<boolean>(resolve => {
    const socket = net.connect({ host: HOST, port })
    const done = (ok: boolean): void => { socket.destroy(); resolve(ok) }
    socket.setTimeout(1000, () => { done(false) })
    socket.once('connect', () => { done(true) })
    socket.once('error', () => { done(false) })
  })
}
