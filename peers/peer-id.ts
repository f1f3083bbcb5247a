/**
 * `edge-mesh peer-id --data <dir>`: prints the peer id of a data dir, creating its key
 * (`<dir>/peer-key`) if the dir has none yet, exactly as a gateway or analytics peer started on
 * that dir would. What it is for: knowing a peer's id before it first starts, to write the
 * `--bootstrap` address of the others (`/ip4/…/tcp/4001/p2p/<id>`) or a `--writer <region>=<id>` list.
 */
import { parseArgs } from 'node:util'
import { peerIdOfDataDir } from '@edge-mesh/mesh'

const HELP = `Usage: edge-mesh peer-id --data <dir>

Prints the peer id of the data dir <dir> (its key is <dir>/peer-key), creating the key if the dir
has none: the id a gateway or analytics peer started with --data <dir> will have.

Options:
  --data <dir>   the peer's data dir (created if missing)
  -h, --help     this text

Examples:
  edge-mesh peer-id --data ./data/gw-a
  # a second gateway bootstrapping from the first (listening on port 4001):
  edge-mesh gateway --region plant-1 --data ./data/gw-b \\
    --bootstrap /ip4/127.0.0.1/tcp/4001/p2p/$(edge-mesh peer-id --data ./data/gw-a)
`

export async function runPeerIdCommand (argv: string[]): Promise<void> {
  let values: { data?: string, help?: boolean }
  try {
    values = parseArgs({ args: argv, options: { data: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true }).values
  } catch (err) {
    process.stderr.write(`edge-mesh peer-id: ${(err as Error).message}\n\n${HELP}`)
    process.exitCode = 2
    return
  }
  if (values.help === true) {
    process.stdout.write(HELP)
    return
  }
  if (values.data === undefined || values.data === '') {
    process.stderr.write(`edge-mesh peer-id: --data <dir> is required\n\n${HELP}`)
    process.exitCode = 2
    return
  }
  try {
    process.stdout.write(await peerIdOfDataDir(values.data) + '\n')
  } catch (err) {
    process.stderr.write(`edge-mesh peer-id: ${(err as Error).message}\n`)
    process.exitCode = 1
  }
}
