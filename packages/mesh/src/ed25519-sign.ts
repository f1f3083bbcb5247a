/**
 * Ed25519 signatures with each private key imported once. gossipsub signs every frame a peer
 * publishes (StrictSign) through `@libp2p/crypto`'s Ed25519 private key, whose `sign` imports the
 * key into Node's crypto (from a JWK) on every call: 87-103 µs per signature of a 4.7 kB frame
 * here, against 35-38 µs with a kept key object. A gateway publishes up to one frame per region
 * and flush window (5 ms), so at that rate the import alone would take about a tenth of a core
 * for ten regions.
 *
 * As with the verifier (ed25519-verify.ts), the library offers no way to supply the signer, so
 * `installSignKeyCache` replaces `sign` on the Ed25519 private key class, once per process: same
 * inputs, same (deterministic) signatures, same errors. The key object is kept beside the key
 * instance (a WeakMap: it goes when the key does). A key whose raw bytes are not the library's
 * 64 (seed and public key) goes to the library's own `sign` unchanged.
 */
import { createPrivateKey, sign as cryptoSign, type KeyObject } from 'node:crypto'
import { privateKeyFromRaw } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { replaceMethodOnce } from './replace-method.ts'

const PRIVATE_KEY_BYTES = 64
const SEED_BYTES = 32

const keys = new WeakMap<object, KeyObject>()

/** Node's key object for an Ed25519 private key of `@libp2p/crypto` (its 64 raw bytes), imported once per key instance. */
function signKeyFor (key: object, raw: Uint8Array): KeyObject {
  let k = keys.get(key)
  if (k === undefined) {
    const b64 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url')
    k = createPrivateKey({ format: 'jwk', key: { kty: 'OKP', crv: 'Ed25519', d: b64(raw.subarray(0, SEED_BYTES)), x: b64(raw.subarray(SEED_BYTES)) } })
    keys.set(key, k)
  }
  return k
}

type Sign = PrivateKey['sign']

/**
 * Makes every Ed25519 private key of `@libp2p/crypto` in this process sign with a kept key
 * object. Idempotent; returns whether the cache is in place.
 */
export function installSignKeyCache (): boolean {
  return replaceMethodOnce<Sign>(Object.getPrototypeOf(privateKeyFromRaw(new Uint8Array(PRIVATE_KEY_BYTES))) as object, 'sign', original =>
    function (this: PrivateKey & { raw?: unknown }, message, options) {
      const raw = this.raw
      if (!(raw instanceof Uint8Array) || raw.byteLength !== PRIVATE_KEY_BYTES) return original.call(this, message, options)
      options?.signal?.throwIfAborted()
      return cryptoSign(null, message instanceof Uint8Array ? message : message.subarray(), signKeyFor(this, raw))
    } as Sign)
}
