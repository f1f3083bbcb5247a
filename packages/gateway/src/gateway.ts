/**
 * A gateway: a mesh peer holding the site's regions, the ingestor, the HTTP API, the app
 * WebSocket endpoint on the same server, and optionally MQTT ingest. {@link createGateway}
 * starts everything; {@link Gateway.close} stops it in order.
 */
import { readFile } from 'node:fs/promises'
import { pino, type Logger } from 'pino'
import { createMeshPeer, type MeshPeer, type MeshPeerInit } from '@edge-mesh/mesh'
import type { RegionState } from '@edge-mesh/region-state'
import { attachAppSockets, type AppSockets } from './app-ws.ts'
import { DEFAULTS, httpUrl } from './config.ts'
import { createHttpApp, type HttpApp, type Readiness } from './http.ts'
import { createIngestor, type Ingestor } from './ingest.ts'
import { createGatewayMetrics, type GatewayMetrics } from './metrics.ts'
import type { MqttIngest } from './mqtt.ts'
import { createTestHooks, type TestHooksInit } from './test-hooks.ts'

/** Path of the app WebSocket endpoint: apps connect to `${APP_SOCKETS_PATH}/<region>`. */
export const APP_SOCKETS_PATH = '/v1/docs'

export interface GatewayInit {
  /** Regions held, at least one. */
  regions: string[]
  /** Data directory (peer key and LevelDB). Without it: a fresh identity, state in memory only. */
  dataDir?: string
  /** libp2p listen multiaddrs. @default ['/ip4/127.0.0.1/tcp/0'] */
  listen?: string[]
  /** Peers to keep connected (multiaddrs with /p2p/<id>). @default [] */
  bootstrap?: string[]
  /** Private network key (swarm.key file bytes). */
  psk?: Uint8Array
  /** Read the private network key from this file (when `psk` is not given). */
  pskFile?: string
  /** HTTP listen address; port 0 picks a free one. @default 127.0.0.1:8080 */
  http?: { host: string, port: number }
  /** MQTT broker URL to take readings from. */
  mqtt?: string
  /** Connected peers /ready requires. @default 0 */
  readyMinPeers?: number
  /** @default 200000 */
  maxPendingReadings?: number
  /** @default 4 MiB */
  bodyLimitBytes?: number
  /** Anti-entropy period, ms. @default the mesh's */
  syncIntervalMs?: number
  /** Writer authorization: per region, the peer ids allowed to write it (this gateway's included). */
  writers?: Record<string, string[]>
  /** SSE heartbeat period, ms. @default 15000 */
  sseHeartbeatMs?: number
  /** pino logger; components log as children (`component: 'gateway:http'`, ...). @default pino at info on stderr */
  logger?: Logger
  /** Further mesh options (tests, tuning). */
  mesh?: Partial<Omit<MeshPeerInit, 'regions' | 'dataDir' | 'listen' | 'bootstrap' | 'psk' | 'logger'>>
  /** TEST-ONLY fault hooks (clock offset, partition control), see `test-hooks.ts`. @default none */
  testHooks?: TestHooksInit
}

/** A running gateway. */
export interface Gateway {
  readonly peerId: string
  readonly mesh: MeshPeer
  readonly ingestor: Ingestor
  readonly http: HttpApp
  readonly metrics: GatewayMetrics
  readonly appSockets: AppSockets
  readonly mqtt: MqttIngest | undefined
  /** `http://host:port` the API listens on. */
  readonly url: string
  /** The mesh listen addresses, each with /p2p/<peer id>. */
  addrs: () => string[]
  readiness: () => Readiness
  /**
   * Stops in order: MQTT (its batch in flight completes), ingest (new batches get 503, those in
   * flight are acknowledged), app sockets, HTTP, then the mesh, which flushes LevelDB.
   */
  close: () => Promise<void>
}

/** How long the gateway's start waits for MQTT ingest to connect before it goes on without, ms. */
const MQTT_START_WAIT_MS = 5000
/** First and longest wait before another attempt to start MQTT ingest, ms. */
const MQTT_RETRY_MIN_MS = 2000
const MQTT_RETRY_MAX_MS = 60_000

/**
 * MQTT ingest that outlives a broker that is down when the gateway starts: `start()` waits for
 * the first attempt at most MQTT_START_WAIT_MS (so a reachable broker is subscribed before the
 * gateway reports ready, and one that is down does not hold the gateway back); if the attempt
 * fails, a fresh ingest is started again in the background with backoff until one succeeds or
 * the gateway stops. Once started, mqtt.js itself reconnects. Pause state carries over.
 */
function superviseMqtt (create: () => MqttIngest, log: Logger, url: string): MqttIngest {
  let current = create()
  let paused = false
  let stopped = false
  let timer: ReturnType<typeof setTimeout> | undefined
  let waitMs = MQTT_RETRY_MIN_MS
  const attempt = async (): Promise<void> => {
    try {
      await current.start()
      waitMs = MQTT_RETRY_MIN_MS
    } catch (err) {
      if (stopped) return
      log.error({ url, err: String(err), retryInMs: waitMs }, 'gateway:mqtt could not start; trying again later')
      timer = setTimeout(() => {
        timer = undefined
        if (stopped) return
        current = create()
        if (paused) current.pause()
        void attempt()
      }, waitMs)
      timer.unref()
      waitMs = Math.min(MQTT_RETRY_MAX_MS, waitMs * 2)
    }
  }
  return {
    start: async () => {
      let wait: ReturnType<typeof setTimeout> | undefined
      const waited = new Promise<void>(resolve => { wait = setTimeout(resolve, MQTT_START_WAIT_MS) })
      await Promise.race([attempt(), waited])
      clearTimeout(wait)
    },
    stop: async () => {
      stopped = true
      if (timer !== undefined) clearTimeout(timer)
      await current.stop()
    },
    stats: () => current.stats(),
    pause: () => {
      paused = true
      current.pause()
    },
    resume: () => {
      paused = false
      current.resume()
    }
  }
}

/** Starts a gateway. On failure, whatever was started is stopped again. */
export async function createGateway (init: GatewayInit): Promise<Gateway> {
  const logger = init.logger ?? pino({ level: 'info' }, pino.destination(2))
  const log = logger.child({ component: 'gateway' })
  const metrics = createGatewayMetrics()
  const psk = init.psk ?? (init.pskFile !== undefined ? new Uint8Array(await readFile(init.pskFile)) : undefined)
  // Test-only: off unless init.testHooks is given.
  const testHooks = init.testHooks !== undefined ? createTestHooks(init.testHooks, log) : undefined
  const mesh = await createMeshPeer({
    ...init.mesh,
    ...testHooks?.meshInit(init.mesh?.clock),
    regions: init.regions,
    dataDir: init.dataDir,
    listen: init.listen ?? [...DEFAULTS.listen],
    bootstrap: init.bootstrap ?? [],
    psk,
    ...(init.syncIntervalMs !== undefined ? { syncIntervalMs: init.syncIntervalMs } : {}),
    ...(init.writers !== undefined ? { writers: init.writers } : {}),
    persistence: { ...init.mesh?.persistence, onBatch: metrics.observeBatch },
    logger: logger.child({ component: 'mesh' })
  })
  // What to stop, last started first, if the start fails half way.
  const cleanups: Array<() => Promise<void>> = [async () => { await mesh.stop() }]
  const undo = async (): Promise<void> => {
    for (const f of cleanups.reverse()) await f().catch(() => {})
  }
  try {
    const regions = new Map<string, RegionState>()
    const unwatch: Array<() => void> = []
    for (const name of init.regions) {
      const state = mesh.region(name)
      regions.set(name, state)
      unwatch.push(metrics.watchRegion(state))
    }
    const ingestor = createIngestor({
      mesh,
      regions: init.regions,
      maxPendingReadings: init.maxPendingReadings ?? DEFAULTS.maxPendingReadings,
      logger: logger.child({ component: 'gateway:ingest' })
    })
    const readyMinPeers = init.readyMinPeers ?? DEFAULTS.readyMinPeers
    const readiness = (): Readiness => {
      const s = mesh.stats()
      const storage = mesh.store === undefined ? 'memory' : mesh.store.status()
      const meshStatus = mesh.node.status
      return {
        ready: (storage === 'open' || storage === 'memory') && meshStatus === 'started' && s.peers >= readyMinPeers,
        storage,
        mesh: meshStatus,
        peers: s.peers,
        lastSyncAt: s.lastSyncAt ?? null,
        regions: init.regions
      }
    }
    const http = createHttpApp({
      logger: logger.child({ component: 'gateway:http' }),
      ingestor,
      regions,
      readiness,
      metrics,
      bodyLimitBytes: init.bodyLimitBytes ?? DEFAULTS.bodyLimitBytes,
      sseHeartbeatMs: init.sseHeartbeatMs,
      whenDurable: async region => { await mesh.whenDurable(region) }
    })
    cleanups.push(async () => { await http.app.close() })
    testHooks?.register(http.app, mesh)
    const appSockets = attachAppSockets({
      server: http.app.server,
      path: APP_SOCKETS_PATH,
      region: name => regions.get(name),
      logger: logger.child({ component: 'gateway:app-ws' })
    })
    cleanups.push(async () => { await appSockets.close() })
    const where = init.http ?? DEFAULTS.http
    await http.app.listen({ host: where.host, port: where.port })
    const address = http.app.server.address()
    const port = typeof address === 'object' && address !== null ? address.port : where.port
    const url = httpUrl(where.host, port)

    let mqtt: MqttIngest | undefined
    if (init.mqtt !== undefined) {
      const brokerUrl = init.mqtt
      // Loaded only when used: mqtt.js costs memory a gateway without a broker should not pay.
      const { createMqttIngest } = await import('./mqtt.ts')
      const mqttLog = logger.child({ component: 'gateway:mqtt' })
      // One client id per gateway identity: the broker keeps its QoS 1 messages across restarts.
      const clientId = `edge-mesh-gw-${mesh.peerId.slice(-16)}`
      const m = superviseMqtt(() => createMqttIngest({
        url: brokerUrl,
        regions: init.regions,
        ingest: async (region, readings, opts) => await ingestor.ingest(region, readings, { source: 'mqtt', ifAbsent: opts?.ifAbsent }),
        logger: mqttLog,
        clientId
      }), mqttLog, brokerUrl)
      mqtt = m
      cleanups.push(async () => { await m.stop() })
      ingestor.onPressure(p => { if (p === 'high') m.pause(); else m.resume() })
      await m.start()
    }

    metrics.sources = {
      mesh: () => mesh.stats(),
      storage: () => mesh.store === undefined ? undefined : { ...mesh.store.stats(), status: mesh.store.status() },
      regions: () => [...regions.values()].map(r => r.stats()),
      ingest: () => ingestor.stats(),
      app: () => appSockets.stats(),
      mqtt: mqtt !== undefined ? () => (mqtt as MqttIngest).stats() : undefined,
      sse: () => http.sseStats(),
      http: () => http.stats()
    }

    let closing: Promise<void> | undefined
    const close = async (): Promise<void> => {
      closing ??= (async () => {
        log.info({ peerId: mesh.peerId }, 'gateway: stopping')
        await mqtt?.stop().catch((err: unknown) => { log.warn({ err: String(err) }, 'gateway:mqtt stop failed') })
        await ingestor.close()
        await appSockets.close().catch((err: unknown) => { log.warn({ err: String(err) }, 'gateway:app-ws close failed') })
        http.closeStreams()
        await http.app.close()
        for (const f of unwatch) f()
        await mesh.stop()
        log.info({ peerId: mesh.peerId }, 'gateway: stopped')
      })()
      await closing
    }

    log.info({ peerId: mesh.peerId, addrs: mesh.addrs(), http: url, regions: init.regions, mqtt: init.mqtt }, 'gateway: started')
    return {
      peerId: mesh.peerId,
      mesh,
      ingestor,
      http,
      metrics,
      appSockets,
      mqtt,
      url,
      addrs: () => mesh.addrs(),
      readiness,
      close
    }
  } catch (err) {
    await undo()
    throw err
  }
}
