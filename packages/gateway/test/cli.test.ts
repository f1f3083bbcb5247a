/**
 * `edge-mesh gateway` as a real child process (`node peers/edge-mesh.ts gateway ...`): help, usage
 * errors with status 2, start-up failures with status 1, the ready line, serving, and a clean
 * shutdown on SIGTERM/SIGINT with the data persisted for the next start.
 */
import fs from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import test, { type ExecutionContext } from 'ava'
import { EdgeMeshCommand, type CommandResult } from '../../../test/helpers/edge-mesh-command.ts'
import { freePort } from '../../../test/helpers/mosquitto.ts'
import { tempDir } from './gateway-helpers.ts'

async function run (t: ExecutionContext, args: string[]): Promise<CommandResult> {
  return await new EdgeMeshCommand(t, args).result()
}

interface Ready { event: 'ready', peerId: string, addrs: string[], http: string }

async function startJson (t: ExecutionContext, args: string[]): Promise<{ gw: EdgeMeshCommand, ready: Ready }> {
  const gw = new EdgeMeshCommand(t, ['gateway', '--json', '--http', '127.0.0.1:0', '--log-level', 'warn', ...args])
  const ready = JSON.parse(await gw.line(0)) as Ready
  return { gw, ready }
}

test('edge-mesh --help lists the gateway command; no command or an unknown one exits 2', async t => {
  const help = await run(t, ['--help'])
  t.is(help.code, 0)
  t.regex(help.stdout, /gateway\s+run a site gateway/)
  t.notRegex(help.stdout, /not yet/i)
  const none = await run(t, [])
  t.is(none.code, 2)
  t.regex(none.stderr, /Usage: edge-mesh <command>/)
  const unknown = await run(t, ['frobnicate'])
  t.is(unknown.code, 2)
  t.regex(unknown.stderr, /unknown command "frobnicate"/)
})

test('edge-mesh gateway --help exits 0 with the options and examples', async t => {
  const r = await run(t, ['gateway', '--help'])
  t.is(r.code, 0)
  for (const s of ['Usage: edge-mesh gateway', '--region <name>', '--bootstrap <multiaddr>', '--mqtt <url>', '--psk <file>', 'Examples:', 'curl -X POST']) {
    t.true(r.stdout.includes(s), s)
  }
})

test('usage errors exit 2 with a message naming the flag or key', async t => {
  const dir = await tempDir(t)
  const cases: Array<[string[], string]> = [
    [['--region', 'a', '--nope'], '--nope'],
    [['--region', 'a', '--http', 'localhost'], '--http'],
    [['--region', 'a', '--bootstrap', '/ip4/127.0.0.1/tcp/1'], '--bootstrap'],
    [[], '--region'],
    [['--config', path.join(dir, 'missing.json')], '--config']
  ]
  await fs.writeFile(path.join(dir, 'bad.json'), JSON.stringify({ regions: ['a'], colour: 'red' }))
  cases.push([['--config', path.join(dir, 'bad.json')], '"colour"'])
  for (const [args, named] of cases) {
    const r = await run(t, ['gateway', ...args])
    t.is(r.code, 2, args.join(' '))
    t.true(r.stderr.includes(named), `${args.join(' ')}: ${r.stderr}`)
    t.true(r.stderr.includes("Run 'edge-mesh gateway --help'"))
    t.is(r.stdout, '')
  }
})

test('it starts, prints the ready line, serves, exits 0 on SIGTERM, and a restart has the same identity and data', async t => {
  const dir = await tempDir(t)
  const data = path.join(dir, 'gw')
  const { gw, ready } = await startJson(t, ['--region', 'plant-1', '--data', data])
  t.is(ready.event, 'ready')
  t.regex(ready.http, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.true(ready.addrs.length > 0 && ready.addrs.every(a => a.endsWith(`/p2p/${ready.peerId}`)))
  t.deepEqual(await (await fetch(`${ready.http}/health`)).json(), { status: 'ok' })
  const post = await fetch(`${ready.http}/v1/readings`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify([{ sensor: 'line-1/temp', value: 21.5, unit: 'C' }])
  })
  t.deepEqual(await post.json(), { accepted: 1, duplicates: 0 })

  gw.child.kill('SIGTERM')
  const exit = await gw.result()
  t.is(exit.code, 0, exit.stderr)
  t.true(exit.stdout.trim().endsWith('{"event":"stopped"}'))

  const again = await startJson(t, ['--region', 'plant-1', '--data', data])
  t.is(again.ready.peerId, ready.peerId)
  const read = await (await fetch(`${again.ready.http}/v1/sensors/line-1%2Ftemp`)).json() as Record<string, unknown>
  t.like(read, { sensor: 'line-1/temp', value: 21.5, unit: 'C', writer: ready.peerId })
  again.gw.child.kill('SIGINT')
  t.is((await again.gw.result()).code, 0, 'SIGINT too')
})

test('without --json the ready line is one human line with the peer id, the mesh addresses and the HTTP URL; logs go to stderr', async t => {
  const gw = new EdgeMeshCommand(t, ['gateway', '--region', 'plant-1', '--http', '127.0.0.1:0'])
  const line = await gw.line(0)
  t.regex(line, /^edge-mesh gateway ready: peer 12D3\w+, mesh \/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3\w+, http http:\/\/127\.0\.0\.1:\d+$/)
  gw.child.kill('SIGTERM')
  const exit = await gw.result()
  t.is(exit.code, 0)
  t.regex(exit.stderr, /"msg":"gateway: started"/)
})

test('a gateway that cannot start (HTTP port taken) exits 1 saying why', async t => {
  const server = net.createServer()
  await new Promise<void>(resolve => { server.listen(0, '127.0.0.1', resolve) })
  t.teardown(() => { server.close() })
  const { port } = server.address() as net.AddressInfo
  const r = await run(t, ['gateway', '--region', 'a', '--http', `127.0.0.1:${port}`, '--log-level', 'silent'])
  t.is(r.code, 1)
  t.regex(r.stderr, /failed to start: .*EADDRINUSE/)
})

test('with an MQTT broker that is down the gateway still starts, serves and stops cleanly', async t => {
  const port = await freePort()
  const { gw, ready } = await startJson(t, ['--region', 'a', '--mqtt', `mqtt://127.0.0.1:${port}`])
  t.is((await fetch(`${ready.http}/health`)).status, 200)
  const metrics = await (await fetch(`${ready.http}/metrics`)).text()
  t.regex(metrics, /edge_mesh_mqtt_connected 0/)
  gw.child.kill('SIGTERM')
  t.is((await gw.result()).code, 0)
})
