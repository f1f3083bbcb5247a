/**
 * The gateway's flags and config file: defaults, merging (flags win, lists replaced), paths
 * resolved against the file, and one clear error per kind of mistake naming the flag or key.
 */
import fs from 'node:fs/promises'
import path from 'node:path'
import test, { type ExecutionContext } from 'ava'
import type { EdgeMeshError } from '@edge-mesh/errors'
import { DEFAULTS, httpUrl, parseGatewayCommand, type GatewayConfig } from '../src/config.ts'
import { tempDir } from './gateway-helpers.ts'

const PEER = '12D3KooWGzBfvLMfQsRkeurnxGDqAmUZf6bYuxLNgVVmDAp7g8Yd'
const BOOT = `/ip4/127.0.0.1/tcp/4001/p2p/${PEER}`

async function parse (argv: string[], cwd?: string): Promise<GatewayConfig> {
  const r = await parseGatewayCommand(argv, cwd)
  if (r.help) throw new Error('unexpected help')
  return r.config
}

/** Expects a usage error naming `flagOrKey` in its message and details. */
async function usageError (t: ExecutionContext, argv: string[], where: { flag?: string, key?: string }, cwd?: string): Promise<EdgeMeshError> {
  const err = await t.throwsAsync<EdgeMeshError>(parseGatewayCommand(argv, cwd), { code: 'EM_ERR_INVALID_OPTIONS' })
  if (err === undefined) throw new Error('no error')
  if (where.flag !== undefined) {
    t.is(err.details.flag, where.flag, `details.flag of: ${err.message}`)
    t.true(err.message.includes(where.flag), `the message names ${where.flag}: ${err.message}`)
  }
  if (where.key !== undefined) {
    t.is(err.details.key, where.key, `details.key of: ${err.message}`)
    t.true(err.message.includes(`"${where.key}"`), `the message names "${where.key}": ${err.message}`)
  }
  return err
}

async function writeJson (dir: string, name: string, obj: unknown): Promise<string> {
  const file = path.join(dir, name)
  await fs.writeFile(file, typeof obj === 'string' ? obj : JSON.stringify(obj))
  return file
}

test('--help and -h ask for help whatever else is given', async t => {
  t.deepEqual(await parseGatewayCommand(['--help']), { help: true })
  t.deepEqual(await parseGatewayCommand(['-h', '--region', 'x']), { help: true })
})

test('one --region gives every default', async t => {
  const r = await parseGatewayCommand(['--region', 'eu-west'])
  t.deepEqual(r, {
    help: false,
    json: false,
    config: {
      regions: ['eu-west'],
      listen: [...DEFAULTS.listen],
      bootstrap: [],
      http: { host: '127.0.0.1', port: 8080 },
      logLevel: 'info',
      readyMinPeers: 0,
      maxPendingReadings: 200_000,
      bodyLimitBytes: 4 * 1024 * 1024
    }
  })
})

test('every flag is taken, repeatable ones in order, relative paths against the working directory', async t => {
  const dir = await tempDir(t)
  await fs.writeFile(path.join(dir, 'swarm.key'), 'key')
  const r = await parseGatewayCommand([
    '--region', 'a', '--region', 'b',
    '--listen', '/ip4/0.0.0.0/tcp/4001', '--listen', '/ip6/::/tcp/4001',
    '--bootstrap', BOOT, '--data', 'data/gw', '--http', '0.0.0.0:0', '--mqtt', 'mqtt://127.0.0.1:1883',
    '--psk', 'swarm.key', '--log-level', 'debug', '--ready-min-peers', '2', '--max-pending', '5000',
    '--body-limit', '1m', '--sync-interval', '0', '--json'
  ], dir)
  t.deepEqual(r, {
    help: false,
    json: true,
    config: {
      regions: ['a', 'b'],
      listen: ['/ip4/0.0.0.0/tcp/4001', '/ip6/::/tcp/4001'],
      bootstrap: [BOOT],
      dataDir: path.join(dir, 'data/gw'),
      http: { host: '0.0.0.0', port: 0 },
      mqtt: 'mqtt://127.0.0.1:1883',
      pskFile: path.join(dir, 'swarm.key'),
      logLevel: 'debug',
      readyMinPeers: 2,
      maxPendingReadings: 5000,
      bodyLimitBytes: 1024 * 1024,
      syncIntervalMs: 0
    }
  })
})

test('--http takes host:port, [v6]:port and port 0; anything else is refused naming --http', async t => {
  t.deepEqual((await parse(['--region', 'a', '--http', 'localhost:9000'])).http, { host: 'localhost', port: 9000 })
  t.deepEqual((await parse(['--region', 'a', '--http', '[::1]:0'])).http, { host: '::1', port: 0 })
  for (const bad of ['8080', 'host:', ':8080', 'host:99999', 'host:80:80', '::1:8080', 'host:-1', 'a b:80']) {
    await usageError(t, ['--region', 'a', '--http', bad], { flag: '--http' })
  }
  t.is(httpUrl('::1', 80), 'http://[::1]:80')
  t.is(httpUrl('127.0.0.1', 8080), 'http://127.0.0.1:8080')
})

test('the config file gives settings; flags override them and replace its lists; its paths are relative to it', async t => {
  const dir = await tempDir(t)
  await fs.mkdir(path.join(dir, 'etc'))
  await fs.writeFile(path.join(dir, 'etc', 'swarm.key'), 'key')
  const file = await writeJson(path.join(dir, 'etc'), 'gw.json', {
    regions: ['a', 'b'],
    listen: ['/ip4/127.0.0.1/tcp/4001'],
    bootstrap: [BOOT],
    data: '../var/gw',
    http: '127.0.0.1:8081',
    mqtt: 'mqtt://broker:1883',
    psk: 'swarm.key',
    logLevel: 'warn',
    readyMinPeers: 1,
    maxPending: 1000,
    bodyLimit: 65536,
    syncIntervalMs: 2000
  })
  const fromFile = await parse(['--config', file])
  t.deepEqual(fromFile, {
    regions: ['a', 'b'],
    listen: ['/ip4/127.0.0.1/tcp/4001'],
    bootstrap: [BOOT],
    dataDir: path.join(dir, 'var/gw'),
    http: { host: '127.0.0.1', port: 8081 },
    mqtt: 'mqtt://broker:1883',
    pskFile: path.join(dir, 'etc', 'swarm.key'),
    logLevel: 'warn',
    readyMinPeers: 1,
    maxPendingReadings: 1000,
    bodyLimitBytes: 65536,
    syncIntervalMs: 2000
  })
  const overridden = await parse(['--config', 'etc/gw.json', '--region', 'c', '--http', '127.0.0.1:0', '--log-level', 'error', '--data', 'here'], dir)
  t.deepEqual(overridden.regions, ['c'], 'a repeatable flag replaces the file list')
  t.deepEqual(overridden.http, { host: '127.0.0.1', port: 0 })
  t.is(overridden.logLevel, 'error')
  t.is(overridden.dataDir, path.join(dir, 'here'), 'a flag path is relative to the working directory')
  t.deepEqual(overridden.bootstrap, [BOOT], 'settings without a flag still come from the file')
  t.is(overridden.maxPendingReadings, 1000)
})

test('an unknown key in the config file is refused naming the key and the file', async t => {
  const dir = await tempDir(t)
  const file = await writeJson(dir, 'gw.json', { regions: ['a'], listenAddrs: ['/ip4/127.0.0.1/tcp/1'] })
  const err = await usageError(t, ['--config', file], { key: 'listenAddrs' })
  t.is(err.details.file, file)
  t.true(err.message.includes(file))
})

test('a config value of the wrong type is refused naming its key', async t => {
  const dir = await tempDir(t)
  const cases: Array<[string, unknown]> = [
    ['regions', 'a'], ['regions', [1]], ['regions', ['bad name!']], ['regions', ['a', 'a']],
    ['listen', '/ip4/127.0.0.1/tcp/1'], ['listen', ['not-a-multiaddr']],
    ['bootstrap', ['/ip4/127.0.0.1/tcp/4001']], ['data', 3], ['data', ''], ['http', 8080], ['http', 'x'],
    ['mqtt', 'http://x'], ['psk', false], ['logLevel', 'loud'], ['readyMinPeers', -1], ['readyMinPeers', '1'],
    ['maxPending', 0], ['maxPending', 1.5], ['bodyLimit', null], ['syncIntervalMs', -5]
  ]
  for (const [key, value] of cases) {
    const file = await writeJson(dir, `${key}.json`, { regions: ['a'], [key]: value })
    await usageError(t, ['--config', file], { key })
  }
})

test('a missing, unreadable or malformed config file is refused naming --config', async t => {
  const dir = await tempDir(t)
  const missing = path.join(dir, 'nope.json')
  const err = await usageError(t, ['--config', missing], { flag: '--config' })
  t.true(err.message.includes('ENOENT'))
  await usageError(t, ['--config', dir], { flag: '--config' })
  await usageError(t, ['--config', await writeJson(dir, 'bad.json', '{"regions": [')], { flag: '--config' })
  await usageError(t, ['--config', await writeJson(dir, 'array.json', '["a"]')], { flag: '--config' })
})

test('no region anywhere is refused naming --region', async t => {
  await usageError(t, [], { flag: '--region' })
  const dir = await tempDir(t)
  await usageError(t, ['--config', await writeJson(dir, 'empty.json', {})], { flag: '--region' })
  await usageError(t, ['--config', await writeJson(dir, 'none.json', { regions: [] })], { flag: '--region' })
})

test('bad flag values are refused naming the flag', async t => {
  const dir = await tempDir(t)
  const cases: Array<[string, string]> = [
    ['--region', 'no spaces'], ['--region', '-lead'], ['--listen', '/ip4/999.1.1.1/tcp/1'], ['--listen', 'tcp://x'],
    ['--bootstrap', '/ip4/127.0.0.1/tcp/4001'], ['--bootstrap', 'garbage'], ['--mqtt', 'not a url'], ['--mqtt', 'http://x:1'],
    ['--log-level', 'verbose'], ['--ready-min-peers', '-1'], ['--ready-min-peers', 'two'], ['--max-pending', '0'],
    ['--max-pending', '1e3'], ['--body-limit', '0'], ['--body-limit', '4g'], ['--sync-interval', '1.5'], ['--data', '']
  ]
  for (const [flag, value] of cases) await usageError(t, ['--region', 'a', flag, value], { flag })
  await usageError(t, ['--region', 'a', '--region', 'a'], { flag: '--region' })
  await usageError(t, ['--region', 'a', '--psk', path.join(dir, 'missing.key')], { flag: '--psk' })
})

test('a key file named in the config file and missing is refused naming "psk"', async t => {
  const dir = await tempDir(t)
  await usageError(t, ['--config', await writeJson(dir, 'gw.json', { regions: ['a'], psk: 'missing.key' })], { key: 'psk' })
})

test('unknown flags, flags without their value and stray arguments are refused', async t => {
  await usageError(t, ['--region', 'a', '--nope'], { flag: '--nope' })
  await usageError(t, ['--region', 'a', '--http'], { flag: '--http' })
  const err = await t.throwsAsync<EdgeMeshError>(parseGatewayCommand(['--region', 'a', 'extra']), { code: 'EM_ERR_INVALID_OPTIONS' })
  t.is(err?.details.value, 'extra')
})

test('--body-limit takes bytes or a k/m suffix', async t => {
  t.is((await parse(['--region', 'a', '--body-limit', '512'])).bodyLimitBytes, 512)
  t.is((await parse(['--region', 'a', '--body-limit', '64k'])).bodyLimitBytes, 65536)
  t.is((await parse(['--region', 'a', '--body-limit', '4MiB'])).bodyLimitBytes, 4 * 1024 * 1024)
})

test('the example configs in peers/ parse', async t => {
  const peers = path.resolve(import.meta.dirname, '../../../peers')
  const a = await parse(['--config', path.join(peers, 'gateway.example.json')])
  t.deepEqual(a.regions, ['plant-1'])
  t.is(a.dataDir, path.resolve(peers, '../data/gw-a'))
  t.deepEqual(a.http, { host: '127.0.0.1', port: 8080 })
  const b = await parse(['--config', path.join(peers, 'gateway-site-b.example.json')])
  t.is(b.bootstrap.length, 1)
  t.is(b.readyMinPeers, 1)
  t.deepEqual(b.http, { host: '127.0.0.1', port: 8081 })
})

test('writers come from --writer <region>=<peer id> flags or the "writers" key; they replace the file\'s; bad ones are refused by name', async t => {
  const other = '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo'
  const flags = await parse(['--region', 'a', '--region', 'b', '--writer', `a=${PEER}`, '--writer', `a=${other}`, '--writer', `b=${PEER}`])
  t.deepEqual(flags.writers, { a: [PEER, other], b: [PEER] })
  t.is((await parse(['--region', 'a'])).writers, undefined)

  const dir = await tempDir(t)
  const file = await writeJson(dir, 'gw.json', { regions: ['a'], writers: { a: [PEER, other] } })
  t.deepEqual((await parse(['--config', file])).writers, { a: [PEER, other] })
  t.deepEqual((await parse(['--config', file, '--writer', `a=${other}`])).writers, { a: [other] })

  await usageError(t, ['--region', 'a', '--writer', PEER], { flag: '--writer' })
  await usageError(t, ['--region', 'a', '--writer', 'a=not-a-peer-id'], { flag: '--writer' })
  await usageError(t, ['--region', 'a', '--writer', `b=${PEER}`], { flag: '--writer' })
  await usageError(t, ['--config', await writeJson(dir, 'bad1.json', { regions: ['a'], writers: [PEER] })], { key: 'writers' })
  await usageError(t, ['--config', await writeJson(dir, 'bad2.json', { regions: ['a'], writers: { a: [] } })], { key: 'writers' })
  await usageError(t, ['--config', await writeJson(dir, 'bad3.json', { regions: ['a'], writers: { a: ['x'] } })], { key: 'writers' })
})
