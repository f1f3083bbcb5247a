/**
 * `edge-mesh analytics`: the parsing of its flags (`parseAnalyticsCommand`), and the command as a
 * real child process (`node peers/edge-mesh.ts analytics ...`): help, usage errors with status 2,
 * a start-up failure with status 1, the ready line, serving, and a clean shutdown on SIGINT that
 * keeps the history for the next start.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import test from 'ava'
import type { EdgeMeshError } from '@edge-mesh/errors'
import { parseAnalyticsCommand, parseDuration, testHooksFromEnv, ANALYTICS_DEFAULTS } from '../src/index.ts'
import { EdgeMeshCommand } from '../../../test/helpers/edge-mesh-command.ts'
import { tempDir } from './helpers.ts'

const PEER = '12D3KooWBmwkafWE2fqfzS96VoTZNkLaxi3ayFnRy9E9Zd7Jjv6Q'
const ADDR = `/ip4/127.0.0.1/tcp/4001/p2p/${PEER}`

// ------------------------------------------------------------------ parsing

test('flags are parsed with their defaults', async t => {
  const p = await parseAnalyticsCommand(['--data', 'd', '--bootstrap', ADDR, '--bootstrap', ADDR.replace('4001', '4002')], '/srv')
  if (p.help) return t.fail()
  t.deepEqual(p.config, {
    dataDir: '/srv/d',
    bootstrap: [ADDR, ADDR.replace('4001', '4002')],
    listen: ['/ip4/127.0.0.1/tcp/0'],
    http: { host: '127.0.0.1', port: 8090 },
    retentionMs: 7 * 86_400_000,
    anomalyThreshold: 3.5,
    maxFollowedRegions: 64,
    logLevel: 'info'
  })
  t.false(p.json)
  const all = await parseAnalyticsCommand(['--data', '/x', '--http', '[::1]:0', '--listen', '/ip4/0.0.0.0/tcp/4001', '--retention', '36h',
    '--anomaly-threshold', '4.5', '--writer', `plant-1=${PEER}`, '--sync-interval', '0', '--max-regions', '3', '--log-level', 'warn', '--json'])
  if (all.help) return t.fail()
  t.like(all.config, { dataDir: '/x', http: { host: '::1', port: 0 }, listen: ['/ip4/0.0.0.0/tcp/4001'], retentionMs: 36 * 3_600_000, anomalyThreshold: 4.5, writers: { 'plant-1': [PEER] }, syncIntervalMs: 0, maxFollowedRegions: 3, logLevel: 'warn' })
  t.true(all.json)
  t.deepEqual(await parseAnalyticsCommand(['--help']), { help: true })
  t.deepEqual(await parseAnalyticsCommand(['-h', '--bogus']).catch(() => 'threw'), 'threw', 'an unknown flag is refused even beside --help')
  t.is(ANALYTICS_DEFAULTS.http.port, 8090)
})

test('durations take ms, s, m, h, d and w, or bare milliseconds', t => {
  t.is(parseDuration('7d', '--retention'), 7 * 86_400_000)
  t.is(parseDuration('90m', '--retention'), 5_400_000)
  t.is(parseDuration('1.5h', '--retention'), 5_400_000)
  t.is(parseDuration('30s', '--retention'), 30_000)
  t.is(parseDuration('250ms', '--retention'), 250)
  t.is(parseDuration('2w', '--retention'), 14 * 86_400_000)
  t.is(parseDuration('5000', '--retention'), 5000)
  for (const bad of ['', '7x', '-1d', '0', '0.1ms', 'd', '1e3']) t.throws(() => parseDuration(bad, '--retention'), { code: 'EM_ERR_INVALID_OPTIONS' }, bad)
})

test('every bad flag is an EM_ERR_INVALID_OPTIONS naming it', async t => {
  const cases: Array<[string[], string]> = [
    [[], '--data'],
    [['--data', ' '], '--data'],
    [['--data', 'd', '--bootstrap', '/ip4/127.0.0.1/tcp/4001'], '--bootstrap'],
    [['--data', 'd', '--bootstrap', 'not-an-addr'], '--bootstrap'],
    [['--data', 'd', '--listen', '/nope/1'], '--listen'],
    [['--data', 'd', '--http', '8090'], '--http'],
    [['--data', 'd', '--http', '127.0.0.1:70000'], '--http'],
    [['--data', 'd', '--retention', 'forever'], '--retention'],
    [['--data', 'd', '--anomaly-threshold', '0'], '--anomaly-threshold'],
    [['--data', 'd', '--anomaly-threshold', 'high'], '--anomaly-threshold'],
    [['--data', 'd', '--writer', 'plant-1'], '--writer'],
    [['--data', 'd', '--writer', 'plant-1=someone'], '--writer'],
    [['--data', 'd', '--writer', `bad region=${PEER}`], '--writer'],
    [['--data', 'd', '--sync-interval', '-1'], '--sync-interval'],
    [['--data', 'd', '--max-regions', '0'], '--max-regions'],
    [['--data', 'd', '--log-level', 'loud'], '--log-level'],
    [['--data', 'd', '--psk', '/nonexistent/swarm.key'], '--psk'],
    [['--data', 'd', '--bogus'], '--bogus'],
    [['--data'], '--data']
  ]
  for (const [argv, flag] of cases) {
    const err = await t.throwsAsync<EdgeMeshError>(parseAnalyticsCommand(argv), { code: 'EM_ERR_INVALID_OPTIONS' }, argv.join(' '))
    t.is(err?.details.flag, flag, `${argv.join(' ')}: ${err?.message}`)
  }
  await t.throwsAsync(parseAnalyticsCommand(['--data', 'd', 'extra']), { code: 'EM_ERR_INVALID_OPTIONS', message: /unexpected argument "extra"/ })
})

test('the test-only control is read from EDGE_MESH_TEST_CONTROL', t => {
  t.is(testHooksFromEnv({}), undefined)
  t.is(testHooksFromEnv({ EDGE_MESH_TEST_CONTROL: '0' }), undefined)
  t.deepEqual(testHooksFromEnv({ EDGE_MESH_TEST_CONTROL: '1' }), { control: true })
  t.throws(() => testHooksFromEnv({ EDGE_MESH_TEST_CONTROL: 'yes' }), { code: 'EM_ERR_INVALID_OPTIONS' })
})

// ------------------------------------------------------------------ the command

test('--help prints the usage with examples; usage errors exit 2 naming the flag', async t => {
  const help = await new EdgeMeshCommand(t, ['analytics', '--help']).result()
  t.is(help.code, 0)
  t.regex(help.stdout, /^edge-mesh analytics: /)
  t.regex(help.stdout, /--bootstrap <multiaddr>/)
  t.regex(help.stdout, /Examples:/)
  const noData = await new EdgeMeshCommand(t, ['analytics', '--bootstrap', ADDR]).result()
  t.is(noData.code, 2)
  t.regex(noData.stderr, /--data <dir> is required/)
  t.is(noData.stdout, '')
  const bad = await new EdgeMeshCommand(t, ['analytics', '--data', 'd', '--retention', 'soon']).result()
  t.is(bad.code, 2)
  t.regex(bad.stderr, /--retention: expected a duration/)
  const badEnv = await new EdgeMeshCommand(t, ['analytics', '--data', 'd'], { env: { EDGE_MESH_TEST_CONTROL: 'on' } }).result()
  t.is(badEnv.code, 2)
  t.regex(badEnv.stderr, /EDGE_MESH_TEST_CONTROL/)
})

test('the command prints its ready line, serves, stops cleanly on SIGINT, and a second one on the same data dir fails with status 1', async t => {
  const dir = await tempDir(t)
  const key = join(dir, 'swarm.key')
  await writeFile(key, '/key/swarm/psk/1.0.0/\n/base16/\n' + 'ab'.repeat(32) + '\n')
  const a = new EdgeMeshCommand(t, ['analytics', '--json', '--data', dir, '--http', '127.0.0.1:0', '--psk', key, '--log-level', 'warn'])
  const ready = JSON.parse(await a.line(0)) as { event: string, peerId: string, addrs: string[], http: string }
  t.is(ready.event, 'ready')
  t.regex(ready.peerId, /^12D3KooW/)
  t.true(ready.addrs.every(x => x.endsWith(`/p2p/${ready.peerId}`)))
  t.regex(ready.http, /^http:\/\/127\.0\.0\.1:\d+$/)
  const health = await fetch(`${ready.http}/health`)
  t.is(health.status, 200)
  const r = await fetch(`${ready.http}/ready`)
  t.is(r.status, 200)
  t.like(await r.json(), { ready: true, storage: 'open', mesh: 'started', regions: 0 })

  const b = await new EdgeMeshCommand(t, ['analytics', '--json', '--data', dir, '--http', '127.0.0.1:0', '--log-level', 'silent']).result()
  t.is(b.code, 1, b.stderr)
  t.regex(b.stderr, /failed to start/)

  a.child.kill('SIGINT')
  const run = await a.result()
  t.is(run.code, 0, run.stderr)
  t.deepEqual(JSON.parse(run.stdout.trim().split('\n').at(-1) as string), { event: 'stopped' })

  // The same identity on the next start.
  const c = new EdgeMeshCommand(t, ['analytics', '--json', '--data', dir, '--http', '127.0.0.1:0', '--psk', key, '--log-level', 'warn'])
  t.is((JSON.parse(await c.line(0)) as { peerId: string }).peerId, ready.peerId)
  c.child.kill('SIGTERM')
  t.is((await c.result()).code, 0)
})
