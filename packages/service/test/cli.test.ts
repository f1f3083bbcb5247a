/**
 * Command-line parsing: parseArgs' errors become EM_ERR_INVALID_OPTIONS naming the flag (message
 * and details.flag), stray arguments are refused unless --help is given, and --writer
 * <region>=<peer id> flags become a writers map or an error naming the flag.
 */
import test from 'ava'
import { isEdgeMeshError, type EdgeMeshError } from '@edge-mesh/errors'
import { isPeerId, parseFlags, parseWriterFlags, LOG_LEVELS } from '../src/index.ts'

const FLAGS = {
  http: { type: 'string' },
  region: { type: 'string', multiple: true },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
} as const

const PEER = '12D3KooWGzBqhZ1Hr5DkUuZwGfFpMbHShLFhFdzhZVXDvqJc8W8Y'
const OTHER = 'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N'

/** The InvalidOptionsError `f` throws. */
function usageError (t: import('ava').ExecutionContext, f: () => unknown): EdgeMeshError {
  const err = t.throws(f) as EdgeMeshError
  t.true(isEdgeMeshError(err, 'EM_ERR_INVALID_OPTIONS'), String(err))
  t.is(err.name, 'InvalidOptionsError')
  return err
}

test('flags are parsed, repeatable ones as lists', t => {
  t.deepEqual({ ...parseFlags(['--http', '127.0.0.1:0', '--region', 'a', '--region', 'b', '--json'], FLAGS, 'edge-mesh test') }, { http: '127.0.0.1:0', region: ['a', 'b'], json: true })
  t.deepEqual({ ...parseFlags([], FLAGS, 'edge-mesh test') }, {})
  t.deepEqual({ ...parseFlags(['-h'], FLAGS, 'edge-mesh test') }, { help: true })
})

test('an unknown flag is refused by name, with the command whose --help lists the flags', t => {
  for (const flag of ['--nope', '-x']) {
    const err = usageError(t, () => parseFlags(['--http', '127.0.0.1:0', flag], FLAGS, 'edge-mesh test'))
    t.is(err.message, `unknown flag ${flag} (see edge-mesh test --help)`)
    t.deepEqual(err.details, { flag })
  }
  const beside = usageError(t, () => parseFlags(['--help', '--bogus'], FLAGS, 'edge-mesh other'))
  t.is(beside.details.flag, '--bogus', 'refused even beside --help')
  t.regex(beside.message, /edge-mesh other --help/)
})

test('a flag without its value, or a value given to a boolean flag, is refused naming the flag', t => {
  const missing = usageError(t, () => parseFlags(['--region', 'a', '--http'], FLAGS, 'edge-mesh test'))
  t.is(missing.details.flag, '--http')
  t.true(missing.message.includes('--http'), missing.message)
  const bool = usageError(t, () => parseFlags(['--json=yes'], FLAGS, 'edge-mesh test'))
  t.is(bool.details.flag, '--json')
  t.true(bool.message.includes('--json'), bool.message)
})

test('a positional argument is refused (every setting is a flag), unless --help is asked for', t => {
  const err = usageError(t, () => parseFlags(['--json', 'stray'], FLAGS, 'edge-mesh test'))
  t.is(err.message, 'unexpected argument "stray" (every setting is a --flag)')
  t.deepEqual(err.details, { value: 'stray' })
  t.deepEqual({ ...parseFlags(['--help', 'stray'], FLAGS, 'edge-mesh test') }, { help: true })
})

test('--writer <region>=<peer id> flags become the writers of each region, in order', t => {
  t.deepEqual(parseWriterFlags([`a=${PEER}`, `b=${OTHER}`, `a=${OTHER}`]), { a: [PEER, OTHER], b: [OTHER] })
  t.deepEqual(parseWriterFlags([]), {})
})

test('a bad --writer is refused naming the flag, with the item at fault', t => {
  const cases: Array<[string, RegExp]> = [
    [PEER, /expected <region>=<peer id>/],
    [`=${PEER}`, /expected <region>=<peer id>/],
    [`bad region=${PEER}`, /invalid region name "bad region" \(1-64 characters/],
    [`${'r'.repeat(65)}=${PEER}`, /invalid region name/],
    ['a=not-a-peer-id', /"not-a-peer-id" is not a peer id/],
    ['a=', /"" is not a peer id/]
  ]
  for (const [item, message] of cases) {
    const err = usageError(t, () => parseWriterFlags([`a=${PEER}`, item]))
    t.regex(err.message, /^--writer: /, item)
    t.regex(err.message, message, item)
    t.deepEqual(err.details, { flag: '--writer', value: item })
  }
  const named = usageError(t, () => parseWriterFlags(['x'], '--allow'))
  t.is(named.details.flag, '--allow')
  t.regex(named.message, /^--allow: /)
})

test('isPeerId takes the forms peers print and nothing else', t => {
  for (const id of [PEER, OTHER, '16Uiu2HAmQ6xZxQ2p2p2p2p2p2p2p2p2p2p2p2p2p2p2p2p', `b${'a'.repeat(58)}`]) t.true(isPeerId(id), id)
  for (const id of ['', '12D3KooW', `${PEER} `, `${PEER}/x`, 'peer-1', `12D3KooW${'0'.repeat(30)}`]) t.false(isPeerId(id), id)
  t.deepEqual([...LOG_LEVELS], ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
})
