/**
 * `edge-mesh peer-id --data <dir>` as a real child process: it prints the id a peer started on the
 * dir has (creating the key when the dir has none), the same on every run, and refuses a missing
 * --data with status 2.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { EDGE_MESH_SCRIPT } from './helpers/child-peer.ts'
import { GatewayProcess } from './helpers/gateway-process.ts'

interface Run { code: number, stdout: string, stderr: string }

async function edgeMesh (args: string[]): Promise<Run> {
  return await new Promise<Run>(resolve => {
    execFile(process.execPath, [EDGE_MESH_SCRIPT, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1
      resolve({ code, stdout, stderr })
    })
  })
}

test('peer-id creates the key of a new data dir, prints the same id every time, and a gateway on that dir has it', async t => {
  const root = await mkdtemp(join(tmpdir(), 'em-peer-id-'))
  t.teardown(async () => { await rm(root, { recursive: true, force: true }) })
  const dir = join(root, 'gw')

  const first = await edgeMesh(['peer-id', '--data', dir])
  t.is(first.code, 0, first.stderr)
  const id = first.stdout.trim()
  t.regex(id, /^12D3KooW[1-9A-HJ-NP-Za-km-z]+$/)
  t.is(first.stdout, id + '\n', 'only the id on stdout')
  const key = await readFile(join(dir, 'peer-key'))
  t.true(key.length > 0)

  const again = await edgeMesh(['peer-id', '--data', dir])
  t.is(again.code, 0, again.stderr)
  t.is(again.stdout.trim(), id)
  t.deepEqual(await readFile(join(dir, 'peer-key')), key, 'the key is kept, not replaced')

  const gw = await GatewayProcess.start(t, { name: 'A', regions: ['plant-1'], data: dir })
  t.is(gw.peerId, id)
  t.is((await gw.stop()).code, 0)
})

test('peer-id without --data, or with an unknown flag, is a usage error (status 2) that says what is wrong', async t => {
  const missing = await edgeMesh(['peer-id'])
  t.is(missing.code, 2)
  t.regex(missing.stderr, /--data <dir> is required/)
  t.is(missing.stdout, '')
  const unknown = await edgeMesh(['peer-id', '--data', 'x', '--bogus'])
  t.is(unknown.code, 2)
  t.regex(unknown.stderr, /bogus/)
  const help = await edgeMesh(['peer-id', '--help'])
  t.is(help.code, 0)
  t.regex(help.stdout, /Usage: edge-mesh peer-id --data <dir>/)
})
