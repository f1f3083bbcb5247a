/**
 * Ed25519 signature checks with each sender's key imported once. gossipsub checks the signature of
 * every frame a peer receives first (StrictSign), through `@libp2p/crypto`'s Ed25519 public key,
 * whose `verify` imports the key into Node's crypto (from a JWK) on every call. In the mesh's CPU
 * profile that import cost more than the check itself (bench/README.md, "The transport's own cost, cut"):
 * one verification with a freshly imported key took 104 µs here, with a kept key object 78 µs.
 *
 * `@libp2p/crypto` and gossipsub offer no way to supply the verifier, so `installVerifyKeyCache`
 * replaces `verify` on the Ed25519 public key class, once per process: same inputs, same results,
 * same errors; the key object comes from a bounded cache (by raw key bytes) instead of a new
 * import. Anything it does not expect (a signature that is not 64 bytes, a class without `raw`)
 * goes to the library's own `verify` unchanged.
 */
import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto'
import { publicKeyFromRaw } from '@libp2p/crypto/keys'
import type { PublicKey } from '@libp2p/interface'
import { replaceMethodOnce } from './replace-method.ts'

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 raw key bytes follow. */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
const SIGNATURE_BYTES = 64
const KEY_BYTES = 32
/** Keys kept; a mesh has tens of peers, and the oldest key goes first past this. */
export const VERIFY_KEY_CACHE_SIZE = 1024

const keys = new Map<string, KeyObject>()

/** Node's key object for a raw Ed25519 public key, imported once while it stays in the cache. */
export function verifyKeyFor (raw: Uint8Array): KeyObject {
  const id = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('latin1')
  let key = keys.get(id)
  if (key === undefined) {
    key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' })
    if (keys.size >= VERIFY_KEY_CACHE_SIZE) keys.delete(keys.keys().next().value as string)
    keys.set(id, key)
  }
  return key
}

/** How many keys the cache holds (for tests and diagnostics). */
export const verifyKeysCached = (): number => keys.size

type Verify = PublicKey['verify']

/**
 * Makes every Ed25519 public key of `@libp2p/crypto` in this process verify with a kept key
 * object. Idempotent; returns whether the cache is in place.
 */
export function installVerifyKeyCache (): boolean {
  return replaceMethodOnce<Verify>(Object.getPrototypeOf(publicKeyFromRaw(new Uint8Array(KEY_BYTES))) as object, 'verify', original =>
    function (this: PublicKey & { raw?: unknown }, data, sig, options) {
      const raw = this.raw
      if (!(raw instanceof Uint8Array) || raw.byteLength !== KEY_BYTES || !(sig instanceof Uint8Array) || sig.byteLength !== SIGNATURE_BYTES) {
        return original.call(this, data, sig, options)
      }
      options?.signal?.throwIfAborted()
      return cryptoVerify(null, data instanceof Uint8Array ? data : data.subarray(), verifyKeyFor(raw), sig)
    } as Verify)
}
