/**
 * Mesh peers as separate processes (peers/mesh-node.ts with --control), over real TCP on
 * 127.0.0.1: three gateways converge; a gateway killed with SIGKILL restarts from its data
 * directory with the same identity and its acknowledged writes, and catches up; flag parsing.
 *
 * Sensors and values come from a seeded PRNG; reproduce a run with EM_MESH_SEED=<seed> (printed
 * with every failure). Convergence is polled (bounded): no sleep is an assertion and no duration
 * is asserted.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import test from 'ava'
import { prng } from '@edge-mesh/testkit'
import { MeshProcess, killAllMeshProcesses, runMeshNode, type PutReading, type ViewEntry } from './helpers/mesh-process.ts'

const SEED = Number(process.env.EM_MESH_SEED ?? 0x3e5b)
const REGION = 'plant-1'
const SYNC_INTERVAL_MS = 1000
const CONVERGE_WITHIN_MS = 30_000
const POLL_EVERY_MS = 200

const dirs: string[] = []

async function tempDir (prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  dirs.push(dir)
  return dir
}

test.after.always(async () => {
  await killAllMeshProcesses()
  await Promise.all(dirs.map(async d => rm(d, { recursive: true, force: true })))
})

/** (t, writer) order of the region state: t first, then writer, both as strings. */
const greater = (a: { t: string, writer: string }, b: { t: string, writer: string }): boolean =>
  a.t > b.t || (a.t === b.t && a.writer > b.writer)

/** The view every replica must reach: for each sensor, the greatest (t, writer) acknowledged. */
function expectedView (acks: PutReading[]): ViewEntry[] {
  const best = new Map<string, PutReading>()
  for (const a of acks) {
    const cur = best.get(a.sensor)
    if (cur === undefined || greater(a, cur)) best.set(a.sensor, a)
  }
  return [...best.values()]
    .sort((x, y) => x.sensor < y.sensor ? -1 : x.sensor > y.sensor ? 1 : 0)
    .map(a => [a.sensor, a.t, a.writer])
}

/** Seeded distinct sensors and values for one writer. */
function workload (rand: () => number, prefix: string, min: number, max: number): Array<{ sensor: string, value: number }> {
  const n = min + Math.floor(rand() * (max - min + 1))
  const out: Array<{ sensor: string, value: number }> = []
  for (let i = 0; i < n; i++) out.push({ sensor: `${prefix}/s${i}-${Math.floor(rand() * 1e6)}`, value: Math.round(rand() * 1e4) / 100 })
  return out
}

async function putAll (p: MeshProcess, items: Array<{ sensor: string, value: number }>): Promise<PutReading[]> {
  return await Promise.all(items.map(async i => p.put(REGION, i.sensor, i.value)))
}

/**
 * Polls `dump` on every process until each view equals `expected`, or until `withinMs`. Returns
 * the last views (the caller asserts them, so that a failure shows the diff).
 */
async function pollUntilConverged (procs: MeshProcess[], expected: ViewEntry[], withinMs: number = CONVERGE_WITHIN_MS): Promise<{ views: ViewEntry[][], polls: number }> {
  const deadline = Date.now() + withinMs
  const want = JSON.stringify(expected)
  let polls = 0
  for (;;) {
    polls++
    const views = await Promise.all(procs.map(async p => p.dump(REGION)))
    if (views.every(v => JSON.stringify(v) === want) || Date.now() >= deadline) return { views, polls }
    await delay(POLL_EVERY_MS)
  }
}

async function startTrio (label: string): Promise<{ a: MeshProcess, b: MeshProcess, c: MeshProcess, dataB: string }> {
  const [dataA, dataB, dataC] = await Promise.all([tempDir(`em-${label}-a-`), tempDir(`em-${label}-b-`), tempDir(`em-${label}-c-`)])
  const a = await MeshProcess.start({ name: `${label}:A`, regions: [REGION], data: dataA, syncIntervalMs: SYNC_INTERVAL_MS })
  const [b, c] = await Promise.all([
    MeshProcess.start({ name: `${label}:B`, regions: [REGION], data: dataB, bootstrap: [a.addr], syncIntervalMs: SYNC_INTERVAL_MS }),
    MeshProcess.start({ name: `${label}:C`, regions: [REGION], data: dataC, bootstrap: [a.addr], syncIntervalMs: SYNC_INTERVAL_MS })
  ])
  return { a, b, c, dataB }
}

test('three gateway processes converge to the same view, the conflicting sensor to the greatest (t, writer)', async t => {
  const rand = prng(SEED)
  const { a, b, c } = await startTrio('conv')
  const procs = [a, b, c]
  t.is(new Set(procs.map(p => p.peerId)).size, 3)

  const CONFLICT = 'shared/conflict'
  const acksByPeer = await Promise.all(procs.map(async (p, i) => putAll(p, workload(rand, `gw${i}`, 4, 10))))
  // The same sensor on all three at once: three concurrent writes, one winner.
  const conflictAcks = await Promise.all(procs.map(async (p, i) => p.put(REGION, CONFLICT, 1000 + i)))
  for (const [i, acks] of acksByPeer.entries()) {
    for (const r of acks) t.is(r.writer, procs[i].peerId, `put answered by ${procs[i].label()} names it as writer (seed ${SEED})`)
  }
  const acks = [...acksByPeer.flat(), ...conflictAcks]
  const expected = expectedView(acks)
  const winner = conflictAcks.reduce((w, r) => greater(r, w) ? r : w)

  const { views, polls } = await pollUntilConverged(procs, expected)
  t.log(`seed ${SEED}: ${acks.length} acknowledged puts, ${expected.length} sensors, ${polls} polls`)
  for (const [i, view] of views.entries()) {
    t.deepEqual(view, expected, `${procs[i].label()} view after ${CONVERGE_WITHIN_MS} ms (seed ${SEED})`)
  }
  // Every sensor written anywhere is on every replica.
  t.deepEqual(views[0].map(e => e[0]), [...new Set(acks.map(r => r.sensor))].sort())
  // The conflicting sensor: the greatest (t, writer) of the three puts, with its value, everywhere.
  for (const p of procs) {
    const e = (await p.dump(REGION)).find(x => x[0] === CONFLICT)
    t.deepEqual(e, [CONFLICT, winner.t, winner.writer], `${p.label()} conflict winner (seed ${SEED})`)
    const got = await p.get(REGION, CONFLICT)
    t.is(got?.value, winner.value, `${p.label()} conflict value (seed ${SEED})`)
  }
})

test('a gateway killed with SIGKILL restarts from its data dir with its identity and acknowledged writes, and catches up', async t => {
  const rand = prng(SEED ^ 0x9e3779b9)
  const { a, b, c, dataB } = await startTrio('kill')
  const CONFLICT = 'shared/conflict'

  const before = await Promise.all([
    putAll(a, workload(rand, 'gwA', 3, 8)),
    putAll(b, workload(rand, 'gwB', 3, 8)),
    putAll(c, workload(rand, 'gwC', 3, 8))
  ])
  const bConflict = await b.put(REGION, CONFLICT, 'from B before the kill')
  const ackedByB = [...before[1], bConflict]

  // Every put of B was acknowledged (durable): kill it with no chance to flush or snapshot.
  const exit = await b.kill('SIGKILL')
  t.is(exit.signal, 'SIGKILL')

  const during = await Promise.all([
    putAll(a, workload(rand, 'gwA-down', 2, 6)),
    putAll(c, workload(rand, 'gwC-down', 2, 6))
  ])
  const cConflict = await c.put(REGION, CONFLICT, 'from C while B was down')

  const b2 = await MeshProcess.start({ name: 'kill:B2', regions: [REGION], data: dataB, bootstrap: [a.addr], syncIntervalMs: SYNC_INTERVAL_MS })
  t.is(b2.peerId, b.peerId, `peer id read back from ${dataB}/peer-key (seed ${SEED})`)

  // Right after ready: B's own acknowledged writes, from LevelDB. The stats, read in the same
  // instant, tell whether anything had come from the network yet (logged, not asserted: timing).
  const [dumpAnswer, statsAnswer] = await b2.commands([['dump', { region: REGION }], ['stats']])
  const firstView = dumpAnswer.view as ViewEntry[]
  const firstStats = statsAnswer.stats as { syncRounds: number, framesIn: number }
  t.log(`B's first dump after restart: ${firstView.length} sensors, taken after ${firstStats.syncRounds} sync rounds and ${firstStats.framesIn} gossip frames in`)
  const firstBySensor = new Map(firstView.map(e => [e[0], e]))
  for (const r of ackedByB) {
    const e = firstBySensor.get(r.sensor)
    t.not(e, undefined, `B lost acknowledged ${r.sensor} (t ${r.t}) across SIGKILL (seed ${SEED})`)
    if (e === undefined) continue
    if (r.sensor === CONFLICT) {
      // Another gateway's write of this sensor may already be merged; B's must not be above it.
      t.false(greater(r, { t: e[1], writer: e[2] }), `B's winner for ${CONFLICT} ${JSON.stringify(e)} is older than its ack ${r.t} (seed ${SEED})`)
    } else {
      t.deepEqual(e, [r.sensor, r.t, r.writer], `B's ${r.sensor} after restart (seed ${SEED})`)
    }
  }

  // B writes again after the restart: its clock continues above everything it acknowledged before.
  const after = await putAll(b2, workload(rand, 'gwB-after', 2, 4))
  const maxBefore = ackedByB.reduce((m, r) => r.t > m ? r.t : m, '')
  for (const r of after) {
    t.true(r.t > maxBefore, `B's t after restart ${r.t} > ${maxBefore} acknowledged before the kill (seed ${SEED})`)
    t.is(r.writer, b.peerId)
  }
  const afterC = await putAll(c, workload(rand, 'gwC-after', 1, 3))

  const acks = [...before.flat(), bConflict, ...during.flat(), cConflict, ...after, ...afterC]
  const expected = expectedView(acks)
  const procs = [a, b2, c]
  const { views, polls } = await pollUntilConverged(procs, expected)
  t.log(`seed ${SEED}: ${acks.length} acknowledged puts, ${expected.length} sensors, ${polls} polls after the restart`)
  for (const [i, view] of views.entries()) {
    t.deepEqual(view, expected, `${procs[i].label()} view after ${CONVERGE_WITHIN_MS} ms (seed ${SEED})`)
  }
})

test('--help prints the usage on stdout and exits 0', async t => {
  const run = await runMeshNode(['--help'])
  t.is(run.code, 0, run.stderr)
  t.regex(run.stdout, /^Usage: node peers\/mesh-node\.ts --region/m)
  t.regex(run.stdout, /--sync-interval/)
  t.is(run.stderr, '')
  const short = await runMeshNode(['-h'])
  t.is(short.code, 0, short.stderr)
  t.is(short.stdout, run.stdout)
})

test('a missing --region exits 2 with a message on stderr', async t => {
  const run = await runMeshNode(['--control', '--sync-interval', '1000'])
  t.is(run.code, 2, run.stderr)
  t.regex(run.stderr, /at least one --region is required/)
  t.is(run.stdout, '', 'nothing on stdout: no ready line')
})

test('an unknown flag exits 2 with a message naming it on stderr', async t => {
  const run = await runMeshNode(['--region', REGION, '--no-such-flag'])
  t.is(run.code, 2, run.stderr)
  t.regex(run.stderr, /--no-such-flag/)
  t.regex(run.stderr, /Usage:/)
  t.is(run.stdout, '')
})
