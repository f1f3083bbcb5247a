/**
 * One write per encrypted message. Noise hands each transport message to the connection below it
 * as two chunks (its 2-byte length, then the ciphertext), and the TCP connection writes chunks one
 * by one: two system calls per message, and on loopback each one runs the kernel's whole delivery
 * path. Joining the chunks first (a copy of a few kB) halves the writes.
 *
 * This decorates a connection encrypter (src/encrypter.ts): the connection it is given to secure
 * gets a `send` that joins a list of chunks into one buffer before passing it on. `send` is the
 * connection's public method (MessageStream); nothing else changes.
 */
import type { MessageStream } from '@libp2p/interface'
import { decorateEncrypter, type EncrypterFactory } from './encrypter.ts'

/** Makes `connection.send` pass one buffer where it was given a list of chunks. */
export function joinChunksOnSend (connection: MessageStream): MessageStream {
  const send = connection.send.bind(connection)
  connection.send = (data) => send(data instanceof Uint8Array ? data : data.subarray())
  return connection
}

/** The encrypter made by `factory`, securing connections whose writes are joined (see above). */
export function joiningWrites<C, E> (factory: EncrypterFactory<C, E>): EncrypterFactory<C, E> {
  return decorateEncrypter(factory, { given: joinChunksOnSend })
}
