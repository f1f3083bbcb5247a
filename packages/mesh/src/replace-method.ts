/**
 * Replaces a method on a library class's prototype, once per process. The key caches
 * (ed25519-verify.ts, ed25519-sign.ts) need it: `@libp2p/crypto` and gossipsub offer no way to
 * supply the verifier or the signer.
 */
const replaced = new WeakMap<object, Set<string>>()

/**
 * Replaces `name` on `proto` with `make(original)`, unless that was done before in this process.
 * `make` gets the library's own method, for the inputs the replacement leaves to it. Returns
 * whether the replacement is in place (false if `proto` has no such method).
 */
export function replaceMethodOnce<F extends (...args: never[]) => unknown> (proto: object, name: string, make: (original: F) => F): boolean {
  let done = replaced.get(proto)
  if (done?.has(name) === true) return true
  const methods = proto as Record<string, unknown>
  const original = methods[name]
  if (typeof original !== 'function') return false
  methods[name] = make(original as F)
  if (done === undefined) replaced.set(proto, (done = new Set()))
  done.add(name)
  return true
}
