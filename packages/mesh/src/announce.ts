/**
 * Region announcements, version 1: what a writable peer publishes on the mesh-wide topic
 * `/edge-mesh/1/announce`, so that read-only peers (the analytics peer) discover the regions of
 * the mesh without being told.
 *
 *   announce := version:u8 (=1)  type:u8 (=2 announce)  count:varuint  region:str{count}
 *   str      := length:varuint  UTF-8 bytes
 *
 * A writable peer publishes the regions it holds when it starts and then every
 * `announceIntervalMs` (default 5 s, ±25 % jitter). Messages are signed like frames (StrictSign):
 * the announcer is the signed sender. A decoder refuses unknown versions and types, region names
 * that are not valid, duplicates, more than `MAX_ANNOUNCED_REGIONS`, truncated or trailing bytes
 * and messages over `MAX_ANNOUNCE_BYTES`, with an `InvalidUpdateError` (`EM_ERR_INVALID_UPDATE`).
 */
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { EdgeMeshError } from '@edge-mesh/errors'
import { isValidRegionName } from '@edge-mesh/region-state'
import { invalidMessage } from './errors.ts'

export const ANNOUNCE_TOPIC = '/edge-mesh/1/announce'
export const ANNOUNCE_VERSION = 1
export const ANNOUNCE_TYPE = 2
/** Most regions in one announcement. */
export const MAX_ANNOUNCED_REGIONS = 256
/** Largest announcement: 256 names of at most 64 bytes, with their prefixes and the header. */
export const MAX_ANNOUNCE_BYTES = 2 + 5 + MAX_ANNOUNCED_REGIONS * (1 + 64)

export function encodeAnnounce (regions: readonly string[]): Uint8Array {
  const enc = encoding.createEncoder()
  encoding.writeUint8(enc, ANNOUNCE_VERSION)
  encoding.writeUint8(enc, ANNOUNCE_TYPE)
  encoding.writeVarUint(enc, regions.length)
  for (const r of regions) encoding.writeVarString(enc, r)
  return encoding.toUint8Array(enc)
}

export function decodeAnnounce (bytes: Uint8Array): string[] {
  if (bytes.length > MAX_ANNOUNCE_BYTES) throw invalidMessage('announcement is over the size limit', { bytes: bytes.length, limit: MAX_ANNOUNCE_BYTES })
  try {
    const dec = decoding.createDecoder(bytes)
    const version = decoding.readUint8(dec)
    if (version !== ANNOUNCE_VERSION) throw invalidMessage(`unknown announcement version ${version}`, { version })
    const type = decoding.readUint8(dec)
    if (type !== ANNOUNCE_TYPE) throw invalidMessage(`unknown announcement type ${type}`, { type })
    const count = decoding.readVarUint(dec)
    if (count > MAX_ANNOUNCED_REGIONS) throw invalidMessage('announcement region count is out of range', { count })
    const regions: string[] = []
    const seen = new Set<string>()
    for (let i = 0; i < count; i++) {
      const r = decoding.readVarString(dec)
      if (!isValidRegionName(r)) throw invalidMessage('announcement names an invalid region', { region: String(r).slice(0, 80) })
      if (seen.has(r)) throw invalidMessage('announcement names a region twice', { region: r })
      seen.add(r)
      regions.push(r)
    }
    if (decoding.hasContent(dec)) throw invalidMessage('trailing bytes after the last region')
    return regions
  } catch (err) {
    if (err instanceof EdgeMeshError) throw err
    throw invalidMessage('announcement is truncated or malformed', { cause: String(err) })
  }
}
