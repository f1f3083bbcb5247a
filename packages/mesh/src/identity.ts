import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { CorruptRecordError } from '@edge-mesh/errors'

/** File, in the data dir, holding the peer's private key (libp2p protobuf encoding, mode 0600). */
export const PEER_KEY_FILE = 'peer-key'

/**
 * The peer's persistent identity: the Ed25519 key in `<dataDir>/peer-key`, created on first start.
 * A file that exists but does not decode is a CorruptRecordError (never silently replaced: the
 * peer id is the writer id of every reading this gateway wrote).
 */
export async function loadOrCreatePeerKey (dataDir: string): Promise<PrivateKey> {
  const path = join(dataDir, PEER_KEY_FILE)
  let bytes: Uint8Array | undefined
  try {
    bytes = await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  if (bytes !== undefined) {
    try {
      return privateKeyFromProtobuf(bytes)
    } catch (err) {
      throw new CorruptRecordError(`peer key ${path} does not decode`, { path }, { cause: err })
    }
  }
  const key = await generateKeyPair('Ed25519')
  await mkdir(dataDir, { recursive: true })
  const tmp = path + '.tmp'
  await writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600 })
  await rename(tmp, path)
  return key
}

/** The peer id (`12D3KooW…`) of the data dir `dataDir`, creating its key as {@link loadOrCreatePeerKey} does. */
export async function peerIdOfDataDir (dataDir: string): Promise<string> {
  return peerIdFromPrivateKey(await loadOrCreatePeerKey(dataDir)).toString()
}
