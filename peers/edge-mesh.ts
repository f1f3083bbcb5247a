#!/usr/bin/env node
/**
 * The `edge-mesh` command: a dispatcher to its subcommands. Each subcommand is loaded only when
 * it is run, so `edge-mesh --help` stays quick.
 *
 *   edge-mesh gateway --region plant-1 --data ./data/gw-a
 *
 * Exit status: that of the subcommand; 2 for an unknown subcommand or none.
 */

interface Command {
  summary: string
  run: (argv: string[]) => Promise<void>
}

const COMMANDS: Record<string, Command> = {
  gateway: {
    summary: 'run a site gateway: mesh peer, HTTP and MQTT ingest, reads, change stream, app subscriptions, health and metrics',
    run: async argv => { await (await import('../packages/gateway/src/cli.ts')).runGatewayCommand(argv) }
  }
}

const HELP = `edge-mesh: live sensor state replicated across edge sites over a libp2p gossip mesh

Usage: edge-mesh <command> [options]

Commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`).join('\n')}

Run 'edge-mesh <command> --help' for the options and examples of a command.
`

async function main (): Promise<void> {
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
  await command.run(rest)
}

main().catch((err: unknown) => {
  process.stderr.write(`edge-mesh failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  process.exitCode = 1
})
