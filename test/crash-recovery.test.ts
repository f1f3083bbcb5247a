/**
 * Crash recovery across processes: a child gateway (test/fixtures/crash-writer.ts) writes to a
 * LevelDB store and prints every reading once `whenDurable()` acknowledged it; the test kills it
 * with SIGKILL at seeded random points (after 1..3000 acknowledged readings), restarts it on the
 * same directory, and after every kill opens the directory itself to check that no acknowledged
 * reading was lost and that the clock never went backwards across restarts.
 *
 * Reproduce a run with EM_CRASH_SEED=<seed> (printed with every failure).
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { openPersistence } from '@edge-mesh/persistence'
import { createRegionState } from '@edge-mesh/region-state'
import { CRASH_REGION, CRASH_SENSORS } from './fixtures/crash-writer.ts'
import { prng } from '@edge-mesh/testkit'

const SEED = Number(process.env.EM_CRASH_SEED ?? 0x5eed)
const KILLS = 24
const MAX_ACKS_BEFORE_KILL = 3000
const WRITER_SCRIPT = fileURLToPath(new URL('./fixtures/crash-writer.ts', import.meta.url))


interface Ack { s: string, t: string, v: number }

interface Incarnation {
  index: number
  killAfter: number
  acks: Ack[]
  minT: string
  maxT: string
  /** Last stats line: [snapshots, compactions, lastSeq]. */
  stats: [number, number, number] | undefined
}

/** A reading acknowledged and then not found (winner older, or same t with another value). */
interface Loss {
  afterKill: number
  ack: Ack
  winner: { t: string, value: unknown } | undefined
}

/** Runs one child until it has acknowledged `killAfter` readings, SIGKILLs it, returns every complete ack line. */
async function runIncarnation (dir: string, index: number, killAfter: number, childSeed: number): Promise<Incarnation> {
  const child = spawn(process.execPath, [WRITER_SCRIPT, dir, String(index), String(childSeed)], { stdio: ['ignore', 'pipe', 'pipe'] })
  const acks: Ack[] = []
  let stats: Incarnation['stats']
  let partial = ''
  let stderr = ''
  let killed = false
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (chunk: string) => { stderr += chunk })
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n')
    partial = lines.pop() as string // an incomplete last line is not an acknowledgement (yet)
    for (const line of lines) {
      if (line === '') continue
      const msg = JSON.parse(line) as Ack | { stats: [number, number, number] }
      if ('stats' in msg) stats = msg.stats
      else acks.push(msg)
    }
    if (!killed && acks.length >= killAfter) {
      killed = true
      child.kill('SIGKILL')
    }
  })
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (c, s) => { resolve([c, s]) })
  })
  if (signal !== 'SIGKILL') {
    throw new Error(`crash-writer incarnation ${index} ended by itself (code ${String(code)}, signal ${String(signal)}), seed ${SEED}:\n${stderr}`)
  }
  let minT = ''
  let maxT = ''
  for (const a of acks) {
    if (minT === '' || a.t < minT) minT = a.t
    if (a.t > maxT) maxT = a.t
  }
  return { index, killAfter, acks, minT, maxT, stats }
}

/** Opens the directory in this process and returns the acknowledged readings it lost, and its clock. */
async function verify (dir: string, latest: Map<string, Ack>, afterKill: number): Promise<{ losses: Loss[], clockNow: string }> {
  // Read-only region, no snapshot on close: the check writes nothing to the directory.
  const store = await openPersistence({ path: dir, snapshotOnClose: false })
  const region = createRegionState({ region: CRASH_REGION, readOnly: true, hlc: store.clock, maintenanceIntervalMs: 0 })
  try {
    await store.bind(region)
    const losses: Loss[] = []
    for (const ack of latest.values()) {
      const w = region.winner(ack.s)
      if (w === undefined || w.t < ack.t || (w.t === ack.t && w.value !== ack.v)) {
        losses.push({ afterKill, ack, winner: w === undefined ? undefined : { t: w.t, value: w.value } })
      }
    }
    return { losses, clockNow: store.clock.now() }
  } finally {
    region.close()
    await store.close()
  }
}

interface CrashRun {
  dir: string
  incarnations: Incarnation[]
  losses: Loss[]
  /** Kills after which the directory's restored clock was not above every acknowledged t. */
  clockBehind: Array<{ afterKill: number, clockNow: string, maxAcked: string }>
  ms: number
}

let dir: string | undefined
let running: Promise<CrashRun> | undefined

/** The kill/restart loop, run once and shared by the tests below. */
async function crashRun (): Promise<CrashRun> {
  running ??= (async () => {
    const t0 = performance.now()
    dir = await mkdtemp(join(tmpdir(), 'em-crash-'))
    const rand = prng(SEED)
    const latest = new Map<string, Ack>()
    const incarnations: Incarnation[] = []
    const losses: Loss[] = []
    const clockBehind: CrashRun['clockBehind'] = []
    let maxAcked = ''
    for (let k = 0; k < KILLS; k++) {
      const killAfter = 1 + Math.floor(rand() * MAX_ACKS_BEFORE_KILL)
      const inc = await runIncarnation(dir, k, killAfter, Math.floor(rand() * 2 ** 32))
      incarnations.push(inc)
      for (const a of inc.acks) {
        const cur = latest.get(a.s)
        if (cur === undefined || a.t > cur.t) latest.set(a.s, a)
        if (a.t > maxAcked) maxAcked = a.t
      }
      const check = await verify(dir, latest, k)
      losses.push(...check.losses)
      if (!(check.clockNow > maxAcked)) clockBehind.push({ afterKill: k, clockNow: check.clockNow, maxAcked })
    }
    return { dir, incarnations, losses, clockBehind, ms: performance.now() - t0 }
  })()
  return running
}

test.after.always(async () => {
  await running?.catch(() => {})
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

test('the writer is killed at 20+ seeded points after acknowledging readings, with snapshots and compaction happening meanwhile', async t => {
  const run = await crashRun()
  t.log(`seed ${SEED}: ${run.incarnations.length} kills, ${run.incarnations.reduce((n, i) => n + i.acks.length, 0)} acknowledged readings, ${Math.round(run.ms)} ms`)
  t.true(run.incarnations.length >= 20)
  for (const inc of run.incarnations) {
    t.true(inc.acks.length >= inc.killAfter, `incarnation ${inc.index} was killed after its ${inc.killAfter}th ack (seed ${SEED})`)
  }
  const last = run.incarnations[run.incarnations.length - 1].stats
  t.not(last, undefined)
  const snapshots = run.incarnations.reduce((n, i) => n + (i.stats?.[0] ?? 0), 0)
  const compactions = run.incarnations.reduce((n, i) => n + (i.stats?.[1] ?? 0), 0)
  t.true(snapshots > run.incarnations.length, `${snapshots} snapshots (seed ${SEED})`)
  t.true(compactions > run.incarnations.length, `${compactions} compactions (seed ${SEED})`)
  t.true(new Set(run.incarnations.flatMap(i => i.acks.map(a => a.s))).size <= CRASH_SENSORS)
})

test('timestamps acknowledged by each restarted writer are above every timestamp acknowledged before: the clock never goes backwards', async t => {
  const run = await crashRun()
  let before = ''
  for (const inc of run.incarnations) {
    t.true(inc.minT > before, `incarnation ${inc.index}: first ack t ${inc.minT} > ${before} (seed ${SEED})`)
    if (inc.maxT > before) before = inc.maxT
  }
  t.deepEqual(run.clockBehind, [], `the restored clock was behind an acknowledged t (seed ${SEED})`)
})

// Regression: a putMany whose update started an automatic snapshot was snapshotted without its
// readings and its record trimmed, so acknowledged readings were lost (see snapshots.test.ts).
test('no acknowledged reading is lost across SIGKILL and restart', async t => {
  const run = await crashRun()
  if (run.losses.length > 0) {
    const byKill = new Map<number, number>()
    for (const l of run.losses) byKill.set(l.afterKill, (byKill.get(l.afterKill) ?? 0) + 1)
    t.log(`seed ${SEED}: ${run.losses.length} acknowledged readings lost, after kills ${JSON.stringify([...byKill])}; first: ${JSON.stringify(run.losses[0])}`)
  }
  t.deepEqual(run.losses, [], `seed ${SEED}`)
})
