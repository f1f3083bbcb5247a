/**
 * Sync messages, version 1: what two peers exchange on a `/edge-mesh/sync/1.0.0` stream. Each
 * message is sent length-prefixed (unsigned varint length, then the bytes) and is
 *
 *   message  := version:u8 (=1)  region:str  yjs
 *   yjs      := y-protocols sync message: type:varuint  payload:bytes
 *   type     := 0 sync step 1 (payload: the sender's Yjs state vector: count:varuint (client:varuint
 *                 clock:varuint){count}, nothing after)
 *             | 1 sync step 2 (payload: a Yjs update, what the receiver's state vector lacks)
 *   bytes    := length:varuint  byte{length}
 *   str      := bytes holding UTF-8
 *
 * A round: the dialer sends step 1 for every region it follows, then `done` (an empty region
 * name, no yjs part). The listener answers each step 1 for a region it follows with step 2 and
 * its own step 1, then `done`; the dialer answers those step 1s with step 2s, then `done`. Regions
 * one side does not follow are skipped. Decoders refuse anything else with an
 * `InvalidUpdateError` (`EM_ERR_INVALID_UPDATE`).
 */
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as syncProtocol from 'y-protocols/sync'
import { EdgeMeshError } from '@edge-mesh/errors'
import { invalidMessage } from './errors.ts'

export const SYNC_PROTOCOL = '/edge-mesh/sync/1.0.0'
export const SYNC_VERSION = 1
export const STEP1 = syncProtocol.messageYjsSyncStep1
export const STEP2 = syncProtocol.messageYjsSyncStep2

export type SyncMessage =
  | { type: 'step1', region: string, stateVector: Uint8Array }
  | { type: 'step2', region: string, update: Uint8Array }
  | { type: 'done' }

export function encodeSyncMessage (msg: SyncMessage): Uint8Array {
  const enc = encoding.createEncoder()
  encoding.writeUint8(enc, SYNC_VERSION)
  if (msg.type === 'done') {
    encoding.writeVarString(enc, '')
    return encoding.toUint8Array(enc)
  }
  if (msg.region === '') throw invalidMessage('a sync step needs a region name')
  encoding.writeVarString(enc, msg.region)
  if (msg.type === 'step1') {
    encoding.writeVarUint(enc, STEP1)
    encoding.writeVarUint8Array(enc, msg.stateVector)
  } else {
    encoding.writeVarUint(enc, STEP2)
    encoding.writeVarUint8Array(enc, msg.update)
  }
  return encoding.toUint8Array(enc)
}

export function decodeSyncMessage (bytes: Uint8Array): SyncMessage {
  try {
    const dec = decoding.createDecoder(bytes)
    const version = decoding.readUint8(dec)
    if (version !== SYNC_VERSION) throw invalidMessage(`unknown sync message version ${version}`, { version })
    const region = decoding.readVarString(dec)
    if (region === '') {
      if (decoding.hasContent(dec)) throw invalidMessage('trailing bytes after done')
      return { type: 'done' }
    }
    const type = decoding.readVarUint(dec)
    const payload = decoding.readVarUint8Array(dec)
    if (decoding.hasContent(dec)) throw invalidMessage('trailing bytes after the sync payload')
    if (type === STEP1) {
      // Checked here, so that answering it (Y.encodeStateAsUpdate) cannot fail on it.
      if (!isStateVector(payload)) throw invalidMessage('sync step 1 does not hold a Yjs state vector', { region })
      return { type: 'step1', region, stateVector: payload }
    }
    if (type === STEP2) return { type: 'step2', region, update: payload }
    throw invalidMessage(`unknown sync message type ${type}`, { type })
  } catch (err) {
    if (err instanceof EdgeMeshError) throw err
    throw invalidMessage('sync message is truncated or malformed', { cause: String(err) })
  }
}

/** True when `bytes` is exactly one Yjs state vector (every integer a safe one). */
function isStateVector (bytes: Uint8Array): boolean {
  const dec = decoding.createDecoder(bytes)
  try {
    const count = decoding.readVarUint(dec)
    if (!Number.isSafeInteger(count) || count > bytes.length) return false
    for (let i = 0; i < 2 * count; i++) {
      if (!Number.isSafeInteger(decoding.readVarUint(dec))) return false
    }
    return !decoding.hasContent(dec)
  } catch {
    return false
  }
}
