/** Shared helpers of the analytics store tests: temp dirs, stores closed at teardown, HLC timestamps. */
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { ExecutionContext } from 'ava'
import { encodeTimestamp } from '@edge-mesh/hlc'
import { openAnalyticsStore, type AnalyticsStore, type AnalyticsStoreInit } from '../src/index.ts'

/** A wall time well inside the HLC range (2023-11-14). */
export const T0 = 1_700_000_000_000

/** A fresh temp dir, removed when the test ends (teardowns run last-registered first, so stores close before). */
export async function tempDir (t: ExecutionContext): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'em-analytics-'))
  t.teardown(async () => { await fs.rm(dir, { recursive: true, force: true }) })
  return dir
}

/** Opens a store that is closed (if still open) when the test ends. No retention timer unless asked for. */
export async function openStore (t: ExecutionContext, init: AnalyticsStoreInit): Promise<AnalyticsStore> {
  const store = await openAnalyticsStore({ retentionIntervalMs: 0, ...init })
  t.teardown(async () => { await store.close() })
  return store
}

/** The HLC timestamp of wall `ms` and logical counter `logical`. */
export const tAt = (ms: number, logical: number = 0): string => encodeTimestamp({ wall: ms, logical })

/** Polls `cond` every 5 ms until it holds, at most `timeoutMs`; throws naming `what` otherwise. */
export async function waitFor (cond: () => boolean, what: string, timeoutMs: number = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

/**
 * Checks `cond` after every turn of the event loop (setImmediate) until it holds, at most
 * `maxTurns` turns and `timeoutMs`; for conditions that may hold only briefly.
 */
export async function waitTurns (cond: () => boolean, what: string, maxTurns: number = 100_000, timeoutMs: number = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (let i = 0; !cond(); i++) {
    if (i >= maxTurns || Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => { setImmediate(resolve) })
  }
}
