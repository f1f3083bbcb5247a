/**
 * Joined writes (src/coalesce.ts): a connection given to the encrypter passes one buffer on where
 * it was handed a list of chunks, with the same bytes and the same answer, and the encrypter is
 * otherwise the one it decorates. The mesh's integration tests run every connection through it.
 */
import test from 'ava'
import { Uint8ArrayList } from 'uint8arraylist'
import type { ConnectionEncrypter, MessageStream, SecuredConnection } from '@libp2p/interface'
import { joinChunksOnSend, joiningWrites } from '../src/coalesce.ts'

/** A connection that records what reaches its `send` and answers `accept`. */
function recorder (accept: boolean): { connection: MessageStream, sent: Array<Uint8Array | Uint8ArrayList> } {
  const sent: Array<Uint8Array | Uint8ArrayList> = []
  const connection = { send: (data: Uint8Array | Uint8ArrayList) => { sent.push(data); return accept } } as unknown as MessageStream
  return { connection, sent }
}

test('a list of chunks reaches the connection as one buffer with the same bytes; a buffer passes as it is', t => {
  const { connection, sent } = recorder(true)
  joinChunksOnSend(connection)
  const list = new Uint8ArrayList(Uint8Array.of(0, 5), Uint8Array.of(1, 2, 3, 4, 5))
  t.true(connection.send(list))
  t.true(sent[0] instanceof Uint8Array, 'one buffer')
  t.deepEqual(Array.from(sent[0] as Uint8Array), [0, 5, 1, 2, 3, 4, 5])
  const single = Uint8Array.of(9, 9)
  connection.send(single)
  t.is(sent[1], single, 'a buffer is not copied')
  t.is(sent.length, 2, 'one send per call')
})

test('the connection\'s answer (whether it can take more) comes back unchanged', t => {
  const { connection } = recorder(false)
  joinChunksOnSend(connection)
  t.false(connection.send(new Uint8ArrayList(Uint8Array.of(1), Uint8Array.of(2))), 'a full connection still says so')
})

test('the decorated encrypter keeps its protocol and secures the joined connection', async t => {
  const given: MessageStream[] = []
  const secured = { connection: {} as MessageStream, remotePeer: undefined } as unknown as SecuredConnection
  const inner: ConnectionEncrypter = {
    protocol: '/test-encrypter/1.0.0',
    secureInbound: async (c) => { given.push(c); return secured },
    secureOutbound: async (c) => { given.push(c); return secured }
  }
  const encrypter = joiningWrites(() => inner)({})
  t.is(encrypter.protocol, '/test-encrypter/1.0.0')
  for (const secure of [encrypter.secureInbound, encrypter.secureOutbound]) {
    const { connection, sent } = recorder(true)
    t.is(await secure(connection), secured, 'the inner result is returned')
    const c = given.at(-1) as MessageStream
    t.is(c, connection, 'the same connection object goes on')
    c.send(new Uint8ArrayList(Uint8Array.of(7), Uint8Array.of(8)))
    t.deepEqual(Array.from(sent[0] as Uint8Array), [7, 8], 'with its sends joined')
  }
})
