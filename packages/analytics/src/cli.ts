/**
 * `edge-mesh analytics`: runs the analytics peer until SIGINT or SIGTERM.
 *
 * stdout carries one line once the peer serves (the peer id, the mesh addresses and the HTTP URL;
 * with `--json` the same as `{"event":"ready","peerId":…,"addrs":[…],"http":"http://…"}`) and,
 * with `--json`, `{"event":"stopped"}` after a clean shutdown. Logs are pino JSON on stderr.
 * Exit status: 0 after a clean shutdown or --help, 2 for a usage error, 1 if the peer fails to
 * start or to stop.
 */
import { pino } from 'pino'
import { isEdgeMeshError } from '@edge-mesh/errors'
import { parseAnalyticsCommand, type AnalyticsConfig } from './config.ts'
import { serve } from '@edge-mesh/service'
import { testHooksFromEnv, type AnalyticsTestHooksInit } from './test-hooks.ts'

export const ANALYTICS_HELP = `edge-mesh analytics: the analytics peer. It joins the mesh read-only, discovers the regions the
gateways announce and follows every one, records every reading it observes (history per sensor,
1-minute aggregates per sensor and per region, anomaly flags), and serves them over HTTP with a
live stream and a dashboard. It never writes region state.

Usage: edge-mesh analytics --data <dir> --bootstrap <multiaddr> [--bootstrap <multiaddr>...] [options]

Options:
  --data <dir>               data directory: peer key, the followed regions' state and the
                             analytics store (required)
  --bootstrap <multiaddr>    a gateway (or any mesh peer) to keep connected, with /p2p/<peer id>
                             (repeatable); regions are discovered through them
  --http <host:port>         HTTP listen address (default 127.0.0.1:8090; port 0: any free port)
  --listen <multiaddr>       mesh listen address (repeatable; default /ip4/127.0.0.1/tcp/0)
  --psk <file>               private network key (swarm.key format), as the gateways have it
  --retention <duration>     how long history, aggregates and anomalies are kept: 7d, 24h, 90m,
                             30s or milliseconds (default 7d)
  --anomaly-threshold <z>    flag a reading whose z-score against its sensor's baseline exceeds
                             this (default 3.5)
  --writer <region>=<id>     writer authorization, as on the gateways: readings of other writers
                             are refused (repeatable; default: any writer)
  --max-regions <n>          most regions followed (default 64)
  --sync-interval <ms>       anti-entropy period of the mesh (default 10000; 0 disables)
  --log-level <level>        fatal, error, warn, info, debug, trace or silent (default info)
  --json                     print the ready line as JSON
  -h, --help                 show this help

Examples:
  # Follow the mesh of two gateways, keep 30 days, dashboard on port 8090:
  edge-mesh analytics --data ./data/analytics --retention 30d \\
    --bootstrap /ip4/10.0.0.5/tcp/4001/p2p/12D3KooW... \\
    --bootstrap /ip4/10.0.0.6/tcp/4001/p2p/12D3KooW...

  # Then open http://127.0.0.1:8090/ (the dashboard), or:
  curl http://127.0.0.1:8090/v1/regions
  curl 'http://127.0.0.1:8090/v1/history?region=plant-1&sensor=line-1/temp&from=1700000000000&limit=100'
  curl 'http://127.0.0.1:8090/v1/aggregates?region=plant-1&sensor=line-1/temp'
  curl 'http://127.0.0.1:8090/v1/anomalies?region=plant-1&order=desc&limit=20'
  curl -N http://127.0.0.1:8090/v1/stream
`

const out = (line: string): void => { process.stdout.write(line + '\n') }

/** How long a shutdown may take before the process gives up and exits 1. */
const STOP_TIMEOUT_MS = 30_000

/**
 * Runs `edge-mesh analytics` with `argv` (the arguments after the subcommand). Resolves once the
 * peer serves (or with the exit status set, on --help or an error); the process then runs until a
 * signal stops it.
 */
export async function runAnalyticsCommand (argv: string[]): Promise<void> {
  let parsed
  let testHooks: AnalyticsTestHooksInit | undefined
  try {
    parsed = await parseAnalyticsCommand(argv)
    // TEST-ONLY hooks (test-hooks.ts), off unless their environment variable is set.
    if (!parsed.help) testHooks = testHooksFromEnv()
  } catch (err) {
    if (isEdgeMeshError(err, 'EM_ERR_INVALID_OPTIONS')) {
      process.stderr.write(`edge-mesh analytics: ${err.message}\nRun 'edge-mesh analytics --help' for the options.\n`)
      process.exitCode = 2
      return
    }
    throw err
  }
  if (parsed.help) {
    process.stdout.write(ANALYTICS_HELP)
    process.exitCode = 0
    return
  }
  await run(parsed.config, parsed.json, testHooks)
}

async function run (config: AnalyticsConfig, json: boolean, testHooks: AnalyticsTestHooksInit | undefined): Promise<void> {
  const logger = pino({ level: config.logLevel, base: { pid: process.pid } }, pino.destination(2))
  await serve({
    name: 'analytics',
    logger,
    json,
    out,
    stopTimeoutMs: STOP_TIMEOUT_MS,
    start: async () => {
      // Loaded here, so that --help and usage errors do not load libp2p, fastify and the rest.
      const { createAnalyticsPeer } = await import('./peer.ts')
      return await createAnalyticsPeer({ ...config, logger, ...(testHooks !== undefined ? { testHooks } : {}) })
    }
  })
}
