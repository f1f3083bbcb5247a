/**
 * Command-line parsing shared by the `edge-mesh` services: flags parsed with node:util `parseArgs`
 * whose errors become `InvalidOptionsError` (`EM_ERR_INVALID_OPTIONS`) naming the flag at fault
 * in the message and in `details.flag`, the log levels, and the writer authorization flag
 * `--writer <region>=<peer id>`. A CLI prints such an error and exits with status 2.
 */
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util'
import { InvalidOptionsError } from '@edge-mesh/errors'
import { isValidRegionName } from '@edge-mesh/region-state'

/** Log levels of the structured logs. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = typeof LOG_LEVELS[number]

/** Flag values as `parseArgs` gives them: a string, a boolean, or a list for repeatable flags. */
export type FlagValues = Record<string, string | boolean | Array<string | boolean> | undefined>

/**
 * Parses `argv` (without the subcommand) against `flags`, strictly. Throws `InvalidOptionsError`
 * for an unknown flag (`unknown flag --nope (see <command> --help)`), a flag without its value or
 * with the wrong kind of value (parseArgs' message), naming the flag in `details.flag`, and for a
 * positional argument, unless `--help` was given (every setting is a flag).
 *
 * @param command - the command as typed, named in the hint of an unknown flag (`edge-mesh gateway`)
 */
export function parseFlags (argv: string[], flags: ParseArgsOptionsConfig, command: string): FlagValues {
  let values: FlagValues
  let positionals: string[]
  try {
    ({ values, positionals } = parseArgs({ args: argv, options: flags, strict: true, allowPositionals: true }))
  } catch (err) {
    // parseArgs' messages name the flag ("Unknown option '--foo'", "Option '--http <value>' argument missing").
    const msg = (err as Error).message
    const flag = /'(-{1,2}[^' ]+)/.exec(msg)?.[1]
    if (flag !== undefined && msg.startsWith('Unknown option')) {
      throw new InvalidOptionsError(`unknown flag ${flag} (see ${command} --help)`, { flag })
    }
    throw new InvalidOptionsError(msg, flag !== undefined ? { flag } : {})
  }
  if (values.help !== true && positionals.length > 0) {
    throw new InvalidOptionsError(`unexpected argument ${JSON.stringify(positionals[0])} (every setting is a --flag)`, { value: positionals[0] })
  }
  return values
}

/** A libp2p peer id as a peer prints it (base58btc `12D3KooW…` or `Qm…`, or a CID `bafz…`). */
const PEER_ID = /^(12D3KooW|Qm|16Uiu2)[1-9A-HJ-NP-Za-km-z]{20,100}$|^b[a-z2-7]{50,120}$/

/** True for a string shaped like a libp2p peer id (base58btc `12D3KooW…`, `Qm…`, `16Uiu2…`, or a base32 CID). */
export function isPeerId (s: string): boolean {
  return PEER_ID.test(s)
}

/** Why a peer id is refused, for messages: what a peer id looks like. */
export const PEER_ID_HINT = 'a gateway prints its own on start, e.g. 12D3KooW...'

/** Why a region name is refused, for messages: the rule of region names. */
export const REGION_NAME_HINT = '1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit'

/**
 * Writer authorization from repeatable `--writer <region>=<peer id>` flags: the peer ids allowed
 * to write each region named, in the order given. Throws `InvalidOptionsError` naming `flag`
 * (message and `details.flag`, with the bad item in `details.value`) for an item without `=`, an
 * invalid region name or something that is not a peer id.
 */
export function parseWriterFlags (list: readonly string[], flag: string = '--writer'): Record<string, string[]> {
  const fail = (msg: string, item: string): never => { throw new InvalidOptionsError(`${flag}: ${msg}`, { flag, value: item }) }
  const out: Record<string, string[]> = {}
  for (const item of list) {
    const i = item.indexOf('=')
    if (i <= 0) fail(`expected <region>=<peer id>, got ${JSON.stringify(item)}`, item)
    const region = item.slice(0, i)
    const id = item.slice(i + 1)
    if (!isValidRegionName(region)) fail(`invalid region name ${JSON.stringify(region)} (${REGION_NAME_HINT})`, item)
    if (!isPeerId(id)) fail(`${JSON.stringify(id)} is not a peer id (${PEER_ID_HINT})`, item)
    ;(out[region] ??= []).push(id)
  }
  return out
}
