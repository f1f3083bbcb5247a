/**
 * Ed25519 checks with kept key objects (src/ed25519-verify.ts): once installed, `@libp2p/crypto`'s
 * Ed25519 keys answer exactly as before (valid, tampered, other key, chunked data, malformed
 * signature), import each key once, and keep at most VERIFY_KEY_CACHE_SIZE keys.
 */
import test from 'ava'
import { generateKeyPair, publicKeyFromRaw } from '@libp2p/crypto/keys'
import { Uint8ArrayList } from 'uint8arraylist'
import { installVerifyKeyCache, verifyKeyFor, verifyKeysCached, VERIFY_KEY_CACHE_SIZE } from '../src/ed25519-verify.ts'

interface Case { what: string, run: () => Promise<unknown> }

async function cases (): Promise<Case[]> {
  const signer = await generateKeyPair('Ed25519')
  const other = await generateKeyPair('Ed25519')
  const data = new TextEncoder().encode('a gossip frame, signed by its publisher')
  const sig = await signer.sign(data)
  const tampered = Uint8Array.from(data)
  tampered[3] ^= 1
  const badSig = Uint8Array.from(sig)
  badSig[10] ^= 1
  // Keys as gossipsub gets them: decoded from the raw bytes, a new object per message.
  const key = (): ReturnType<typeof publicKeyFromRaw> => publicKeyFromRaw(signer.publicKey.raw)
  return [
    { what: 'a valid signature', run: async () => await key().verify(data, sig) },
    { what: 'the same data in chunks', run: async () => await key().verify(new Uint8ArrayList(data.subarray(0, 5), data.subarray(5)), sig) },
    { what: 'tampered data', run: async () => await key().verify(tampered, sig) },
    { what: 'a tampered signature', run: async () => await key().verify(data, badSig) },
    { what: 'another key', run: async () => await publicKeyFromRaw(other.publicKey.raw).verify(data, sig) },
    { what: 'a signature of 63 bytes', run: async () => await key().verify(data, sig.subarray(0, 63)) }
  ]
}

/** What a case answers: its result, or the kind and message of what it threw. */
async function outcome (c: Case): Promise<string> {
  try {
    return `returned ${String(await c.run())}`
  } catch (err) {
    return `threw ${(err as Error).name}: ${(err as Error).message}`
  }
}

test.serial('once installed, every answer is the library\'s own', async t => {
  const all = await cases()
  const before = await Promise.all(all.map(outcome))
  t.deepEqual(before.slice(0, 5), ['returned true', 'returned true', 'returned false', 'returned false', 'returned false'], 'the library as it is')
  t.regex(before[5], /^threw /, 'a short signature is refused by the library')
  const original = Object.getPrototypeOf(publicKeyFromRaw(new Uint8Array(32))).verify
  t.true(installVerifyKeyCache())
  t.not(Object.getPrototypeOf(publicKeyFromRaw(new Uint8Array(32))).verify, original, 'the class now verifies with kept keys')
  t.true(installVerifyKeyCache(), 'installing again is harmless')
  t.deepEqual(await Promise.all(all.map(outcome)), before)
})

test.serial('a key is imported once, however many key objects carry it', async t => {
  installVerifyKeyCache()
  const signer = await generateKeyPair('Ed25519')
  const data = Uint8Array.of(1, 2, 3)
  const sig = await signer.sign(data)
  const n = verifyKeysCached()
  for (let i = 0; i < 5; i++) t.true(await publicKeyFromRaw(signer.publicKey.raw).verify(data, sig))
  t.is(verifyKeysCached(), Math.min(n + 1, VERIFY_KEY_CACHE_SIZE))
  t.is(verifyKeyFor(signer.publicKey.raw), verifyKeyFor(Uint8Array.from(signer.publicKey.raw)), 'the same bytes, the same key object')
})

test.serial('the cache keeps at most VERIFY_KEY_CACHE_SIZE keys, and a key pushed out still verifies', async t => {
  const first = await generateKeyPair('Ed25519')
  verifyKeyFor(first.publicKey.raw)
  for (let i = 0; i <= VERIFY_KEY_CACHE_SIZE; i++) {
    const raw = new Uint8Array(32)
    new DataView(raw.buffer).setUint32(0, i + 1)
    raw[31] = 0x42
    verifyKeyFor(raw)
  }
  t.is(verifyKeysCached(), VERIFY_KEY_CACHE_SIZE, 'full, not over')
  const data = Uint8Array.of(9)
  t.true(await publicKeyFromRaw(first.publicKey.raw).verify(data, await first.sign(data)), 'imported again when needed')
})
