/** Shared helpers of the persistence tests: temp dirs, regions, a seeded workload and state capture. */
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { ExecutionContext } from 'ava'
import { Level } from 'level'
import { createRegionState, decodeChunk, type CompactionInit, type JsonValue, type Reading, type RegionState } from '@edge-mesh/region-state'
import { openPersistence, type BoundRegion, type Persistence, type PersistenceInit } from '../src/index.ts'
import { updatePrefix } from '../src/keys.ts'
import { prng } from '@edge-mesh/testkit'
export { prng }

export const REGION = 'eu-west'
export const WRITER = 'gw-a'

/** A fresh temp dir, removed when the test ends (teardowns run last-registered first, so stores close before). */
export async function tempDir (t: ExecutionContext): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'em-persistence-'))
  t.teardown(async () => { await fs.rm(dir, { recursive: true, force: true }) })
  return dir
}

/** Opens a store that is closed (if still open) when the test ends. */
export async function openStore (t: ExecutionContext, init: PersistenceInit): Promise<Persistence> {
  const store = await openPersistence(init)
  t.teardown(async () => { await store.close() })
  return store
}

export interface RegionOptions {
  region?: string
  writer?: string
  compaction?: CompactionInit
  readOnly?: boolean
}

/** A region on the store's clock, without a maintenance timer, closed when the test ends. */
export function newRegion (t: ExecutionContext, store: Persistence, opts: RegionOptions = {}): RegionState {
  const region = createRegionState({
    region: opts.region ?? REGION,
    writer: opts.readOnly === true ? undefined : (opts.writer ?? WRITER),
    readOnly: opts.readOnly,
    hlc: store.clock,
    maintenanceIntervalMs: 0,
    compaction: opts.compaction
  })
  t.teardown(() => { region.close() })
  return region
}

/** Opens a store and binds a fresh region to it. */
export async function openBound (t: ExecutionContext, init: PersistenceInit, opts: RegionOptions = {}): Promise<{ store: Persistence, region: RegionState, bound: BoundRegion }> {
  const store = await openStore(t, init)
  const region = newRegion(t, store, opts)
  const bound = await store.bind(region)
  return { store, region, bound }
}


export const sensorName = (i: number): string => `line-${Math.floor(i / 50)}/s${i}`

function randomValue (rand: () => number, n: number): JsonValue {
  switch (Math.floor(rand() * 5)) {
    case 0: return Math.round(rand() * 1e6) / 100
    case 1: return `v${n}`
    case 2: return rand() < 0.5
    case 3: return null
    default: return { n, tags: ['a', n % 7] }
  }
}

/**
 * A seeded mix of single puts, putMany, deletes and mixed writes over `sensors` sensors, awaiting
 * durability every few operations (so group commits of varying size happen).
 */
export async function runWorkload (region: RegionState, bound: BoundRegion, opts: { seed: number, sensors: number, ops: number }): Promise<void> {
  const rand = prng(opts.seed)
  const pick = (): string => sensorName(Math.floor(rand() * opts.sensors))
  for (let i = 0; i < opts.ops; i++) {
    const r = rand()
    if (r < 0.45) {
      const entries = Array.from({ length: 1 + Math.floor(rand() * 20) }, () => ({ sensor: pick(), value: randomValue(rand, i) }))
      region.putMany(entries)
    } else if (r < 0.75) {
      region.put(pick(), randomValue(rand, i))
    } else if (r < 0.9) {
      region.delete(pick())
    } else {
      region.write([{ sensor: pick(), value: randomValue(rand, i) }, { sensor: pick(), deleted: true }, { sensor: pick(), value: i }])
    }
    if (rand() < 0.1) await bound.whenDurable()
  }
  await bound.whenDurable()
}

/** The readings held in the writer's own log, in log order. */
export function ownLog (region: RegionState, writer: string = WRITER): Reading[] {
  return region.doc.getArray<Uint8Array>('w/' + writer).toArray().flatMap(chunk => decodeChunk(chunk).readings)
}

export interface Captured {
  winners: Array<Reading | undefined>
  list: string[]
  ownLog: Reading[]
  ownLogReadings: number
  ownLive: number
  sensors: number
  tombstones: number
}

/** Everything a restart must restore, for sensors 0 .. sensors-1 (plus any extra names). */
export function capture (region: RegionState, sensors: number, extra: string[] = []): Captured {
  const names = [...Array.from({ length: sensors }, (_, i) => sensorName(i)), ...extra]
  const stats = region.stats()
  return {
    winners: names.map(s => region.winner(s)),
    list: region.list(),
    ownLog: ownLog(region),
    ownLogReadings: stats.ownLogReadings,
    ownLive: stats.ownLive,
    sensors: stats.sensors,
    tombstones: stats.tombstones
  }
}

/** The greatest `t` among readings. */
export function maxT (readings: Iterable<Reading | undefined>): string {
  let m = ''
  for (const r of readings) if (r !== undefined && r.t > m) m = r.t
  return m
}

/**
 * Takes a snapshot that really ran, and returns once no snapshot is in flight.
 *
 * Works around `BoundRegion.snapshot()` returning at once, without snapshotting or trimming, while
 * an automatic snapshot is still in flight (see the failing test in snapshots.test.ts): it
 * retries until a call is seen to have written a snapshot of its own.
 */
export async function snapshotNow (store: Persistence, bound: BoundRegion): Promise<void> {
  for (;;) {
    // Any automatic snapshot queued so far has passed its write (and counted itself) after this.
    await store.whenDurable()
    const before = bound.stats().snapshots
    await bound.snapshot()
    if (bound.stats().snapshots > before) return
    await new Promise<void>(resolve => { setImmediate(resolve) })
  }
}

/** Opens a closed store's directory with `level` directly, the way the store lays it out. */
export function rawDb (dir: string): Level<string, Uint8Array> {
  return new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
}

/** Keys of the update records of a region (the store must be closed). */
export async function updateKeys (dir: string, region: string = REGION): Promise<string[]> {
  const db = rawDb(dir)
  await db.open()
  try {
    const prefix = updatePrefix(region)
    const keys: string[] = []
    for await (const key of db.keys({ gte: prefix, lt: prefix + '~' })) keys.push(key)
    return keys
  } finally {
    await db.close()
  }
}

/** Total size in bytes of the files in a directory tree. */
export async function dirBytes (dir: string): Promise<number> {
  let total = 0
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await fs.stat(path.join(entry.parentPath, entry.name))).size
  }
  return total
}
