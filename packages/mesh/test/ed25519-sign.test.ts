/**
 * Ed25519 signatures with kept key objects (src/ed25519-sign.ts): once installed, `@libp2p/crypto`'s
 * Ed25519 private keys sign exactly as before (the same bytes for the same key and data, chunked
 * data included), and the signatures verify.
 */
import test from 'ava'
import { generateKeyPair, privateKeyFromRaw } from '@libp2p/crypto/keys'
import { Uint8ArrayList } from 'uint8arraylist'
import { installSignKeyCache } from '../src/ed25519-sign.ts'

test('once installed, signatures are the library\'s own, byte for byte, and verify', async t => {
  const keys = [await generateKeyPair('Ed25519'), await generateKeyPair('Ed25519')]
  const messages = [new Uint8Array(0), Uint8Array.of(1), new Uint8Array(4700).map((_, i) => i * 7), new TextEncoder().encode('a frame')]
  const sign = async (): Promise<string[]> => {
    const out: string[] = []
    for (const k of keys) {
      for (const m of messages) out.push(Buffer.from(await k.sign(m)).toString('hex'))
      out.push(Buffer.from(await k.sign(new Uint8ArrayList(messages[2].subarray(0, 100), messages[2].subarray(100)))).toString('hex'))
    }
    return out
  }
  const before = await sign()
  const original = Object.getPrototypeOf(keys[0]).sign
  t.true(installSignKeyCache())
  t.not(Object.getPrototypeOf(keys[0]).sign, original, 'the class now signs with kept keys')
  t.true(installSignKeyCache(), 'installing again is harmless')
  const after = await sign()
  t.deepEqual(after, before)
  t.is(after[4], after[2], 'chunked data signs as the same bytes')
  t.not(after[0], after[5], 'another key, another signature')
  for (const [i, k] of keys.entries()) {
    for (const [j, m] of messages.entries()) t.true(await k.publicKey.verify(m, Buffer.from(after[i * 5 + j], 'hex')))
  }
  // A key rebuilt from the same raw bytes (a restart) signs the same.
  t.is(Buffer.from(await privateKeyFromRaw(keys[1].raw).sign(messages[3])).toString('hex'), after[8])
})
