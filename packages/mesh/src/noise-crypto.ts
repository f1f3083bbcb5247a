/**
 * The crypto behind Noise's transport messages, given to `noise({ crypto })` (the package's own
 * extension point). It is `@chainsafe/libp2p-noise`'s default in every way but one: a message's
 * ChaCha20-Poly1305 key is imported into Node's crypto once per session instead of once per message.
 *
 * The default passes the session key to `createCipheriv` as bytes, and Node turns those bytes into
 * a key object on every call: that import cost more than the cipher itself for the mesh's frames.
 * Measured here with 6.6 kB messages: 20.5-22.3 µs per message with bytes, 11.9-13.6 µs with a key
 * object made once. Every gossip message crosses one Noise encryption and one decryption per hop, so
 * this is a large share of what the transport spends per frame (bench/README.md, "The transport's
 * own cost, cut").
 *
 * The key object is cached per session key array (a WeakMap, so it goes with the session) together
 * with a copy of the key's bytes, checked on each use: a key changed in place gets a new key object,
 * never a stale one. Messages under 1200 bytes go to the default unchanged (its WebAssembly cipher is
 * the faster one at that size), and so does everything else Noise asks of its crypto (hashing, key
 * agreement, the handshake).
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'

type Bytes = Parameters<ICryptoInterface['chaCha20Poly1305Encrypt']>[0]

const CHACHA20_POLY1305 = 'chacha20-poly1305'
const TAG_BYTES = 16
/** Below this size the default's WebAssembly cipher is used, as the default itself does. */
export const NODE_CIPHER_MIN_BYTES = 1200

interface CachedKey { bytes: Buffer, key: KeyObject }
const keys = new WeakMap<Uint8Array, CachedKey>()

/** Node's key object for the session key `k`, made once per key (and again if its bytes change). */
export function sessionKey (k: Uint8Array): KeyObject {
  const cached = keys.get(k)
  if (cached !== undefined && cached.bytes.equals(k)) return cached.key
  const bytes = Buffer.from(k)
  const key = createSecretKey(bytes)
  keys.set(k, { bytes, key })
  return key
}

/** One contiguous view of a message (a list of chunks is joined). */
const contiguous = (data: Bytes): Uint8Array => data instanceof Uint8Array ? data : data.subarray()

export const meshNoiseCrypto: ICryptoInterface = {
  ...defaultCrypto,

  chaCha20Poly1305Encrypt (plaintext, nonce, ad, k) {
    if (plaintext.byteLength < NODE_CIPHER_MIN_BYTES) return defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k)
    const data = contiguous(plaintext)
    const cipher = createCipheriv(CHACHA20_POLY1305, sessionKey(k), nonce, { authTagLength: TAG_BYTES })
    cipher.setAAD(ad, { plaintextLength: data.byteLength })
    const updated = cipher.update(data)
    const final = cipher.final()
    const tag = cipher.getAuthTag()
    return Buffer.concat([updated, final, tag], updated.byteLength + final.byteLength + tag.byteLength)
  },

  chaCha20Poly1305Decrypt (ciphertext, nonce, ad, k, dst) {
    if (ciphertext.byteLength < NODE_CIPHER_MIN_BYTES) return defaultCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst)
    const data = contiguous(ciphertext)
    const decipher = createDecipheriv(CHACHA20_POLY1305, sessionKey(k), nonce, { authTagLength: TAG_BYTES })
    const text = data.subarray(0, data.byteLength - TAG_BYTES)
    decipher.setAAD(ad, { plaintextLength: text.byteLength })
    decipher.setAuthTag(data.subarray(data.byteLength - TAG_BYTES))
    const output = decipher.update(text)
    // final() checks the tag and throws when it does not match.
    const final = decipher.final()
    return final.byteLength > 0 ? Buffer.concat([output, final], output.byteLength + final.byteLength) : output
  }
}
