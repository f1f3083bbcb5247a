import { InvalidUpdateError } from '@edge-mesh/errors'

/** A gossip frame or sync message that cannot be decoded: always an `EM_ERR_INVALID_UPDATE`. */
export function invalidMessage (message: string, details: Record<string, unknown> = {}): InvalidUpdateError {
  return new InvalidUpdateError(message, details)
}
