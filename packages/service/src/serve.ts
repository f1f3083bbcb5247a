/**
 * The process lifecycle of a service command (`edge-mesh gateway`, `edge-mesh analytics`): start
 * the service, install the SIGINT/SIGTERM handlers, then print the ready line; on the first signal
 * close the service (bounded by `stopTimeoutMs`), print `{"event":"stopped"}` with --json, flush
 * the log and exit 0; a second signal, a failed close or the bound exits 1. A failure to start is
 * logged, printed on stderr and leaves exit status 1.
 */
/** The part of a (pino) logger the lifecycle uses. */
export interface ServeLogger {
  fatal: (obj: object, msg: string) => void
  error: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
  info: (obj: object, msg: string) => void
  flush: () => void
}

/** What a started service exposes to its command. */
export interface ServedService {
  readonly peerId: string
  readonly url: string
  addrs: () => string[]
  close: () => Promise<void>
}

export interface ServeInit {
  /** The command's name in messages and logs (`gateway`, `analytics`). */
  name: string
  logger: ServeLogger
  /** Print the ready and stopped lines as JSON. */
  json: boolean
  /** Starts the service (where its heavy modules are loaded). */
  start: () => Promise<ServedService>
  /** Bound on a shutdown, ms. @default 30000 */
  stopTimeoutMs?: number
  /** Where lines go. @default stdout */
  out?: (line: string) => void
}

export async function serve (init: ServeInit): Promise<void> {
  const { name, logger, json } = init
  const out = init.out ?? ((line: string): void => { process.stdout.write(line + '\n') })
  const stopTimeoutMs = init.stopTimeoutMs ?? 30_000
  let service: ServedService
  try {
    service = await init.start()
  } catch (err) {
    logger.fatal({ err }, `${name}: failed to start`)
    process.stderr.write(`edge-mesh ${name}: failed to start: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
    return
  }
  let stopping = false
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, `${name}: second signal while stopping, exiting at once`)
      process.exit(1)
    }
    stopping = true
    logger.info({ signal }, `${name}: signal received, shutting down`)
    const timer = setTimeout(() => {
      logger.error({ ms: stopTimeoutMs }, `${name}: shutdown took too long, exiting`)
      process.exit(1)
    }, stopTimeoutMs)
    timer.unref()
    service.close().then(() => {
      if (json) out(JSON.stringify({ event: 'stopped' }))
      logger.flush()
      process.exit(0)
    }, (err: unknown) => {
      logger.error({ err }, `${name}: shutdown failed`)
      logger.flush()
      process.exit(1)
    })
  }
  // The handlers first: a signal sent as soon as the ready line is read must find them (without a
  // listener, SIGTERM's default action ends the process at once, without flushing).
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  const addrs = service.addrs()
  if (json) out(JSON.stringify({ event: 'ready', peerId: service.peerId, addrs, http: service.url }))
  else out(`edge-mesh ${name} ready: peer ${service.peerId}, mesh ${addrs.join(' ')}, http ${service.url}`)
}
