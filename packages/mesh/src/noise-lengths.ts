/**
 * Reading Noise's length prefixes without an exception per read.
 *
 * A Noise connection splits what the socket delivers into transport messages with a
 * LengthPrefixedDecoder (`@libp2p/utils`) whose length reader, `uint16BEDecode`, throws a
 * RangeError when fewer than 2 bytes are buffered; the decoder catches it and waits for more. The
 * buffer is empty at the end of almost every socket read, so every read builds an error and its
 * stack trace: 2-4 % of a peer thread's busy time in CPU profiles of bench:mesh and of 10 raw
 * gossipsub peers.
 *
 * The decoder stops waiting for more bytes whenever a message's 2-byte prefix plus its length
 * exceeds what is buffered. This reader returns 0 when fewer than 2 bytes are buffered, which
 * makes that test stop the loop exactly where the exception did (a 2-byte message needs 2 bytes);
 * with 2 or more bytes it returns the big-endian length, as `uint16BEDecode` does.
 *
 * This decorates a connection encrypter (src/encrypter.ts): the connection it returns gets this
 * reader. The decoder is a field of the library's connection class, not part of its API; when it
 * is not found the connection is left as it is (the test of this module fails then, so an upgrade
 * is noticed).
 */
import type { MessageStream } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'
import { decorateEncrypter, type EncrypterFactory } from './encrypter.ts'

/** The 2-byte big-endian length at the start of `data`, or 0 while fewer than 2 bytes are there. */
export function noiseLength (data: Uint8ArrayList | Uint8Array): number {
  if (data.byteLength < 2) return 0
  if (data instanceof Uint8Array) return (data[0] << 8) | data[1]
  return (data.get(0) << 8) | data.get(1)
}

interface WithDecoder { decoder?: { lengthDecoder?: unknown } }

/** Gives a secured Noise connection the reader above; true if it had the decoder to give it to. */
export function readLengthsQuietly (connection: MessageStream): boolean {
  const decoder = (connection as unknown as WithDecoder).decoder
  if (decoder === undefined || typeof decoder.lengthDecoder !== 'function') return false
  decoder.lengthDecoder = noiseLength
  return true
}

/** The encrypter made by `factory`, whose secured connections read lengths with `noiseLength`. */
export function quietLengthReads<C, E> (factory: EncrypterFactory<C, E>): EncrypterFactory<C, E> {
  return decorateEncrypter(factory, { secured: s => { readLengthsQuietly(s.connection) } })
}
