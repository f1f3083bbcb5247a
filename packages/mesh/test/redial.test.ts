import test from 'ava'
import { REGION, connected, startPeer, tempDir, waitFor } from './helpers.ts'

test('a peer redials its bootstrap peer with backoff after it went away, and they converge again', async t => {
  const dir = await tempDir(t)
  // B first on a free port, then again on that same port, so that A's bootstrap address stays valid.
  const first = await startPeer(t, { dataDir: dir, syncIntervalMs: 0 })
  const addr = first.addrs()[0]
  const port = addr.split('/')[4]
  await first.stop()
  let b = await startPeer(t, { dataDir: dir, listen: [`/ip4/127.0.0.1/tcp/${port}`], syncIntervalMs: 0 })
  t.is(b.addrs()[0], addr, 'B restarted with the same identity and address')

  const a = await startPeer(t, { bootstrap: [addr], redial: { minMs: 50, maxMs: 400 }, syncIntervalMs: 0 })
  await waitFor(() => connected(a, b), 'A to connect to its bootstrap peer B')

  await b.stop()
  await waitFor(() => !connected(a, b), 'A to notice that B is gone')
  a.region(REGION).put('while-b-was-down', 1)

  b = await startPeer(t, { dataDir: dir, listen: [`/ip4/127.0.0.1/tcp/${port}`], syncIntervalMs: 0 })
  // B knows nothing of A (no bootstrap list): only A's redialer can bring the link back.
  await waitFor(() => connected(a, b), 'A to redial B after it came back')
  await waitFor(() => b.region(REGION).get('while-b-was-down')?.value === 1, 'B to receive the write made while it was down (sync on connect)')
  t.true(a.stats().peers >= 1)
})
