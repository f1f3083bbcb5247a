#!/usr/bin/env node
/**
 * The `edge-mesh` command: a dispatcher to its subcommands. Each subcommand is loaded only when
 * it is run, so `edge-mesh --help` stays quick.
 *
 *   edge-mesh gateway --region plant-1 --data ./data/gw-a
 *
 * Exit status: that of the subcommand; 2 for an unknown subcommand or none.
 *
 * Memory: a gateway has 256-512 MB of RAM. V8's defaults are sized for throughput on servers: up
 * to 64 MB of young generation (all of it resident once touched) and an old generation that grows
 * well ahead of the live data under a high allocation rate; glibc gives every thread its own
 * malloc arena. A subcommand that runs a peer therefore starts with
 *
 *   node flags  `--max-semi-space-size=2 --heap-growing-percent=30` (`EDGE_MESH_NODE_FLAGS`
 *               replaces them; an empty value keeps V8's defaults)
 *   env         `MALLOC_ARENA_MAX=2`; `MALLOC_MMAP_THRESHOLD_=131072` (allocations of 128 KiB and
 *               more, such as frames and LevelDB batches, are mapped and returned to the system
 *               when freed instead of fragmenting the heap); Node's compile cache (`NODE_COMPILE_CACHE`, default
 *               `<tmpdir>/edge-mesh-compile-cache`) so that later starts reuse the stripped
 *               TypeScript and V8 code instead of loading the TypeScript stripper (~20 MB)
 *
 * by replacing itself with the same node and arguments plus those settings (`process.execve`: the
 * PID stays the same and no parent is left behind) before anything is loaded. Environment values
 * already set win. Measured with bench:gateway on the 10k-sensor soak: about half the resident set
 * of V8's defaults, for about a third less peak ingest throughput (see bench/README.md). The old
 * generation is not capped: a live set larger than a cap would crash the peer; add
 * `--max-old-space-size=<MB>` to `EDGE_MESH_NODE_FLAGS` to bound it deliberately.
 */
import { tmpdir } from 'node:os'
import { join } from 'node:path'

interface Command {
  summary: string
  run: (argv: string[]) => Promise<void>
}

const COMMANDS: Record<string, Command> = {
  demo: {
    summary: 'run a local demo mesh: gateways for three regions, an analytics peer with its dashboard, simulated sensors',
    run: async argv => { await (await import('./demo.ts')).runDemoCommand(argv) }
  },
  gateway: {
    summary: 'run a site gateway: mesh peer, HTTP and MQTT ingest, reads, change stream, app subscriptions, health and metrics',
    run: async argv => { await (await import('../packages/gateway/src/cli.ts')).runGatewayCommand(argv) }
  },
  analytics: {
    summary: 'run the analytics peer: follows every region read-only; history, aggregates, anomalies, REST API, live stream, dashboard',
    run: async argv => { await (await import('../packages/analytics/src/cli.ts')).runAnalyticsCommand(argv) }
  },
  'peer-id': {
    summary: 'print the peer id of a data dir (creating its key if needed), for --bootstrap addresses and --writer lists',
    run: async argv => { await (await import('./peer-id.ts')).runPeerIdCommand(argv) }
  }
}

const HELP = `edge-mesh: live sensor state replicated across edge sites over a libp2p gossip mesh

Usage: edge-mesh <command> [options]

Commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`).join('\n')}

Run 'edge-mesh <command> --help' for the options and examples of a command.
`

const TUNED_ENV = 'EDGE_MESH_RUNTIME_TUNED'
const DEFAULT_NODE_FLAGS = '--max-semi-space-size=2 --heap-growing-percent=30'

/**
 * Re-executes this process with the memory settings of the module doc, once. Returns only when
 * nothing is to be done (already tuned, settings given explicitly, or no `process.execve`).
 */
function tuneRuntime (): void {
  const env = process.env
  if (env[TUNED_ENV] === '1') {
    // Done for this process; peers it starts (the demo's) tune themselves in turn.
    delete env[TUNED_ENV]
    return
  }
  const flags = (env.EDGE_MESH_NODE_FLAGS ?? DEFAULT_NODE_FLAGS).split(/\s+/).filter(f => f !== '')
  const bad = flags.find(f => !/^--[a-z0-9-]+(=[\w.,-]+)?$/.test(f))
  if (bad !== undefined) {
    process.stderr.write(`edge-mesh: EDGE_MESH_NODE_FLAGS: ${JSON.stringify(bad)} is not a --flag or --flag=value\n`)
    process.exit(2)
  }
  const extra: Record<string, string> = {}
  if (env.MALLOC_ARENA_MAX === undefined) extra.MALLOC_ARENA_MAX = '2'
  if (env.MALLOC_MMAP_THRESHOLD_ === undefined) extra.MALLOC_MMAP_THRESHOLD_ = '131072'
  if (env.NODE_COMPILE_CACHE === undefined && env.NODE_DISABLE_COMPILE_CACHE === undefined) {
    extra.NODE_COMPILE_CACHE = join(tmpdir(), 'edge-mesh-compile-cache')
  }
  if (typeof process.execve !== 'function') return
  process.execve(process.execPath, [process.execPath, ...flags, ...process.execArgv, ...process.argv.slice(1)],
    { ...env, ...extra, [TUNED_ENV]: '1' })
}

/** Output piped into a reader that stops early (`edge-mesh gateway --help | head`) ends quietly. */
function quietOnClosedPipe (): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0)
      throw err
    })
  }
}

async function main (): Promise<void> {
  quietOnClosedPipe()
  const [name, ...rest] = process.argv.slice(2)
  if (name === undefined) {
    process.stderr.write(HELP)
    process.exitCode = 2
    return
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(HELP)
    return
  }
  const command = COMMANDS[name]
  if (command === undefined || !Object.prototype.hasOwnProperty.call(COMMANDS, name)) {
    process.stderr.write(`edge-mesh: unknown command ${JSON.stringify(name)}\n\n${HELP}`)
    process.exitCode = 2
    return
  }
  tuneRuntime()
  await command.run(rest)
}

main().catch((err: unknown) => {
  process.stderr.write(`edge-mesh failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  process.exitCode = 1
})
