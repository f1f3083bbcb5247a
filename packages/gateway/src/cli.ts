/**
 * `edge-mesh gateway`: runs a gateway until SIGINT or SIGTERM.
 *
 * stdout carries one line once the gateway serves (the peer id, the mesh addresses and the HTTP
 * URL; with `--json` the same as `{"event":"ready","peerId":…,"addrs":[…],"http":"http://…"}`)
 * and, with `--json`, `{"event":"stopped"}` after a clean shutdown. Logs are pino JSON on stderr.
 * Exit status: 0 after a clean shutdown or --help, 2 for a usage error (bad flag or config), 1 if
 * the gateway fails to start or to stop.
 */
import { pino } from 'pino'
import { isEdgeMeshError } from '@edge-mesh/errors'
import { parseGatewayCommand, type GatewayConfig } from './config.ts'
import { serve } from '@edge-mesh/service'
import { testHooksFromEnv, type TestHooksInit } from './test-hooks.ts'

export const GATEWAY_HELP = `edge-mesh gateway: a site gateway. It holds regions and replicates them with the other
gateways over the libp2p mesh, takes readings over HTTP (and MQTT), serves reads, a change stream
and app subscriptions (y-websocket), and exposes /health, /ready and /metrics.

Usage: edge-mesh gateway --region <name> [--region <name>...] [options]
       edge-mesh gateway --config <file.json> [options]

Options:
  --config <file>          JSON config file; its keys are the flags in camelCase ("regions",
                           "listen", "bootstrap", "data", "http", "mqtt", "psk", "logLevel",
                           "readyMinPeers", "maxPending", "bodyLimit", "syncIntervalMs", "writers":
                           {"<region>": ["<peer id>", ...]}).
                           Flags override it; a repeatable flag replaces the file's list.
  --region <name>          a region to hold (repeatable; at least one)
  --listen <multiaddr>     mesh listen address (repeatable; default /ip4/127.0.0.1/tcp/0)
  --bootstrap <multiaddr>  a peer to keep connected, with /p2p/<peer id> (repeatable)
  --data <dir>             data directory (peer key and LevelDB); without it, memory only
  --http <host:port>       HTTP listen address (default 127.0.0.1:8080; port 0: any free port)
  --mqtt <url>             take readings from this MQTT broker (topics sensors/<region>/<sensor>)
  --psk <file>             private network key (swarm.key format); peers without it cannot connect
  --log-level <level>      fatal, error, warn, info, debug, trace or silent (default info)
  --ready-min-peers <n>    connected peers /ready requires (default 0)
  --max-pending <n>        readings accepted but not yet durable before ingest answers 429
                           (default 200000)
  --body-limit <bytes>     largest HTTP request body; k and m suffixes (default 4m)
  --sync-interval <ms>     anti-entropy period of the mesh (default 10000; 0 disables)
  --writer <region>=<id>   writer authorization: a peer id allowed to write the region (repeatable;
                           list every writer of the region, this gateway included). Frames and
                           readings of other writers are refused. Default: any peer in the mesh
  --json                   print the ready line as JSON
  -h, --help               show this help

Examples:
  # One gateway, data kept in ./data/gw-a, HTTP on port 8080:
  edge-mesh gateway --region plant-1 --data ./data/gw-a --listen /ip4/0.0.0.0/tcp/4001

  # A second gateway of the same site, joining the first (use the address the first printed):
  edge-mesh gateway --region plant-1 --data ./data/gw-b --http 127.0.0.1:8081 \\
    --bootstrap /ip4/10.0.0.5/tcp/4001/p2p/12D3KooW...

  # From a config file, with MQTT ingest:
  edge-mesh gateway --config peers/gateway.example.json --mqtt mqtt://127.0.0.1:1883

  # Then:
  curl -X POST -H 'content-type: application/json' http://127.0.0.1:8080/v1/readings \\
    -d '[{"sensor":"line-1/temp","value":21.5,"unit":"C","ts":1700000000000}]'
  curl http://127.0.0.1:8080/v1/sensors/line-1%2Ftemp?maxAgeMs=5000
`

const out = (line: string): void => { process.stdout.write(line + '\n') }

/** How long a shutdown may take before the process gives up and exits 1. */
const STOP_TIMEOUT_MS = 30_000

/**
 * Runs `edge-mesh gateway` with `argv` (the arguments after the subcommand). Resolves once the
 * gateway serves (or with the exit status set, on --help or an error); the process then runs
 * until a signal stops it.
 */
export async function runGatewayCommand (argv: string[]): Promise<void> {
  let parsed
  try {
    parsed = await parseGatewayCommand(argv)
  } catch (err) {
    if (isEdgeMeshError(err, 'EM_ERR_INVALID_OPTIONS')) {
      process.stderr.write(`edge-mesh gateway: ${err.message}\nRun 'edge-mesh gateway --help' for the options.\n`)
      process.exitCode = 2
      return
    }
    throw err
  }
  if (parsed.help) {
    process.stdout.write(GATEWAY_HELP)
    process.exitCode = 0
    return
  }
  // TEST-ONLY hooks (test-hooks.ts), off unless their environment variables are set.
  let testHooks: TestHooksInit | undefined
  try {
    testHooks = testHooksFromEnv()
  } catch (err) {
    if (!isEdgeMeshError(err, 'EM_ERR_INVALID_OPTIONS')) throw err
    process.stderr.write(`edge-mesh gateway: ${err.message}\n`)
    process.exitCode = 2
    return
  }
  await run(parsed.config, parsed.json, testHooks)
}

async function run (config: GatewayConfig, json: boolean, testHooks: TestHooksInit | undefined): Promise<void> {
  const logger = pino({ level: config.logLevel, base: { pid: process.pid } }, pino.destination(2))
  await serve({
    name: 'gateway',
    logger,
    json,
    out,
    stopTimeoutMs: STOP_TIMEOUT_MS,
    start: async () => {
      // Loaded here, so that --help and usage errors do not load libp2p, fastify and the rest.
      const { createGateway } = await import('./gateway.ts')
      return await createGateway({ ...config, logger, ...(testHooks !== undefined ? { testHooks } : {}) })
    }
  })
}
