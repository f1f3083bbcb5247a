/**
 * Gossip frames, version 1: what a gateway publishes on a region's topic
 * (`/edge-mesh/1/region/<region>`).
 *
 *   frame    := version:u8 (=1)  type:u8 (=1 updates)  region:str  count:varuint  update:bytes{count}
 *   bytes    := length:varuint  byte{length}
 *   str      := bytes holding UTF-8
 *   varuint  := unsigned LEB128 of a value below 2^32
 *
 * Each update is a Yjs update (v1 encoding) emitted by the sender's region state during one flush
 * window, in the order emitted. A frame is at most `maxFrameBytes`; a decoder refuses unknown
 * versions and types, a region other than the topic's, truncated or trailing bytes, and frames or
 * counts over the limits, with an `InvalidUpdateError` (`EM_ERR_INVALID_UPDATE`).
 */
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { EdgeMeshError } from '@edge-mesh/errors'
import { invalidMessage } from './errors.ts'

export const FRAME_VERSION = 1
export const FRAME_TYPE_UPDATES = 1
/** Most updates in one frame. */
export const MAX_FRAME_UPDATES = 10_000

export interface UpdatesFrame {
  region: string
  updates: Uint8Array[]
}

export function encodeFrame (frame: UpdatesFrame): Uint8Array {
  const enc = encoding.createEncoder()
  encoding.writeUint8(enc, FRAME_VERSION)
  encoding.writeUint8(enc, FRAME_TYPE_UPDATES)
  encoding.writeVarString(enc, frame.region)
  encoding.writeVarUint(enc, frame.updates.length)
  for (const u of frame.updates) encoding.writeVarUint8Array(enc, u)
  return encoding.toUint8Array(enc)
}

/** An upper bound of a frame's header size for a region name (version, type, name, count). */
export const frameHeaderBound = (region: string): number => 2 + 5 + region.length * 3 + 5

/** An upper bound of the bytes one update adds to a frame (its length prefix and bytes). */
export const frameEntryBound = (update: Uint8Array): number => 5 + update.length

export function decodeFrame (bytes: Uint8Array, maxFrameBytes: number): UpdatesFrame {
  if (bytes.length > maxFrameBytes) throw invalidMessage('frame is over the size limit', { bytes: bytes.length, limit: maxFrameBytes })
  try {
    const dec = decoding.createDecoder(bytes)
    const version = decoding.readUint8(dec)
    if (version !== FRAME_VERSION) throw invalidMessage(`unknown frame version ${version}`, { version })
    const type = decoding.readUint8(dec)
    if (type !== FRAME_TYPE_UPDATES) throw invalidMessage(`unknown frame type ${type}`, { type })
    const region = decoding.readVarString(dec)
    const count = decoding.readVarUint(dec)
    if (count > MAX_FRAME_UPDATES || count > bytes.length) throw invalidMessage('frame update count is out of range', { count })
    const updates: Uint8Array[] = []
    for (let i = 0; i < count; i++) updates.push(decoding.readVarUint8Array(dec))
    if (decoding.hasContent(dec)) throw invalidMessage('trailing bytes after the last update')
    return { region, updates }
  } catch (err) {
    if (err instanceof EdgeMeshError) throw err
    throw invalidMessage('frame is truncated or malformed', { cause: String(err) })
  }
}
