/**
 * Decorating a connection encrypter (the `connectionEncrypters` extension point of libp2p): the
 * decorated encrypter has the same protocol and secures connections the same way, with a change
 * applied to the connection it is given and/or to the secured connection it returns. The mesh's
 * transport cost cuts (src/coalesce.ts, src/noise-lengths.ts) are such changes.
 */
import type { ConnectionEncrypter, MessageStream, SecuredConnection } from '@libp2p/interface'

export type EncrypterFactory<C, E> = (components: C) => ConnectionEncrypter<E>

export interface EncrypterChange<E> {
  /** Applied to the connection to secure, before the inner encrypter sees it. */
  given?: (connection: MessageStream) => MessageStream
  /** Applied to the secured connection the inner encrypter returns. */
  secured?: (secured: SecuredConnection<E>) => void
}

/** The encrypter made by `factory`, with `change` applied to every connection it secures. */
export function decorateEncrypter<C, E> (factory: EncrypterFactory<C, E>, change: EncrypterChange<E>): EncrypterFactory<C, E> {
  const given = change.given ?? ((c: MessageStream) => c)
  return (components: C): ConnectionEncrypter<E> => {
    const inner = factory(components)
    return {
      protocol: inner.protocol,
      secureInbound: async (connection, options) => {
        const secured = await inner.secureInbound(given(connection), options)
        change.secured?.(secured)
        return secured
      },
      secureOutbound: async (connection, options) => {
        const secured = await inner.secureOutbound(given(connection), options)
        change.secured?.(secured)
        return secured
      }
    }
  }
}
