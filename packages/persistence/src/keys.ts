/**
 * LevelDB key layout (keys are UTF-8 strings, values raw bytes):
 *
 *   m!hlc                      node clock state: the greatest HLC timestamp, 16 hex chars
 *   m!<name>                   other node metadata (e.g. the peer key), opaque bytes
 *   d!<region>!s!meta          snapshot metadata: JSON {"v":1,"seq":N,"docBytes":N,"viewBytes":N,"at":ms}
 *   d!<region>!s!doc           snapshot: Y.encodeStateAsUpdate of the region doc
 *   d!<region>!s!view          snapshot: the view (see @edge-mesh/region-state, chunk.ts)
 *   d!<region>!u!<seq>         one update, seq as 12 lowercase hex digits (key order = seq order)
 *
 * A snapshot covers every update with seq <= its meta.seq; those records are deleted once the
 * snapshot is written, and ignored on load if a crash left them behind.
 */
export const HLC_KEY = 'm!hlc'
export const metaKey = (name: string): string => `m!${name}`
export const snapshotMetaKey = (region: string): string => `d!${region}!s!meta`
export const snapshotDocKey = (region: string): string => `d!${region}!s!doc`
export const snapshotViewKey = (region: string): string => `d!${region}!s!view`
export const updatePrefix = (region: string): string => `d!${region}!u!`
export const updateKey = (region: string, seq: number): string => updatePrefix(region) + seq.toString(16).padStart(12, '0')
export const seqOfUpdateKey = (key: string): number => parseInt(key.slice(key.lastIndexOf('!') + 1), 16)

export interface SnapshotMeta {
  v: 1
  seq: number
  docBytes: number
  viewBytes: number
  at: number
}
