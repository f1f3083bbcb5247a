/**
 * The chaos suite's CI profile: ten short seeds (test/chaos/seed-run.ts), one after the other,
 * each a fresh cluster of 5 `edge-mesh gateway` processes in 2 regions with skewed clocks (one
 * beyond the drift bound), partitions, SIGKILL and restarts, duplicated and reordered ingest; at
 * the end of each seed the views must be identical and equal the model of the acknowledged
 * readings, reads monotonic, HLCs never backwards across restarts, and the skewed gateway's
 * readings refused, counted and fenced. A failure prints the seed and its fault list.
 *
 * Before the seeds: the plan is a pure function of the seed, and the checks do catch what they
 * look for (fed made-up runs).
 *
 * EM_CHAOS_SEEDS=3,17 runs those seeds instead; the long runs are `npm run chaos` (run.ts).
 */
import test from 'ava'
import {
  MonotonicReads, checkHlcAcrossRestarts, checkViews, type Acked, type ReplicaView, type Shown
} from './model.ts'
import { MAX_DRIFT_MS, REGIONS, SHORT_PROFILE, SKEW_MS, planSeed } from './plan.ts'
import { describeFailure, runSeed } from './seed-run.ts'

const SEEDS = process.env.EM_CHAOS_SEEDS !== undefined
  ? process.env.EM_CHAOS_SEEDS.split(',').map(s => Number(s.trim()))
  : [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]

test('a seed plans the same cluster and faults every time; every plan skews one clock beyond the bound and has a partition, a kill, a duplicate and a reorder', t => {
  for (let seed = 0; seed < 300; seed++) {
    const p = planSeed(seed, SHORT_PROFILE)
    t.deepEqual(planSeed(seed, SHORT_PROFILE), p)
    t.is(p.regions.length, 5)
    for (const r of REGIONS) t.true(p.regions.filter((rs, g) => g !== p.skewed && rs.includes(r)).length >= 2, `seed ${seed}: two holders of ${r} besides the skewed one`)
    t.true(p.offsets[p.skewed] > MAX_DRIFT_MS)
    t.true(p.offsets.every((o, g) => g === p.skewed || Math.abs(o) <= SKEW_MS))
    t.true(p.steps.length >= SHORT_PROFILE.steps[0] && p.steps.length <= SHORT_PROFILE.steps[1])
    t.is(p.steps[0].kind, 'partition')
    for (const kind of ['kill', 'duplicate', 'reorder'] as const) t.true(p.steps.some(s => s.kind === kind), `seed ${seed} has a ${kind}`)
    // At most two gateways down at once, and only running ones are killed.
    const down = new Set<number>()
    for (const s of p.steps) {
      if (s.kind === 'kill') {
        t.false(down.has(s.gateway))
        down.add(s.gateway)
      }
      if (s.kind === 'restart') t.true(down.delete(s.gateway))
      t.true(down.size <= 2)
    }
  }
  t.notDeepEqual(planSeed(1, SHORT_PROFILE), planSeed(2, SHORT_PROFILE))
})

const W = ['12D3KooWA', '12D3KooWB', '12D3KooWC']
const acked = (sensor: string, t: string, writer: string, value: unknown, gateway = 0, life = 0): Acked =>
  ({ region: 'r1', sensor, t, writer, value, gateway, life })
const replica = (gateway: number, entries: Array<[string, Shown]>): ReplicaView => ({ gateway, region: 'r1', view: new Map(entries) })

test('the view check accepts the model (ties broken by writer) and an in-doubt reading that wins everywhere', t => {
  const log = [acked('a', '0001', W[0], 1), acked('a', '0002', W[1], 2), acked('b', '0003', W[0], 3), acked('b', '0003', W[1], 4)]
  const want: Array<[string, Shown]> = [['a', { value: 2, t: '0002', writer: W[1] }], ['b', { value: 4, t: '0003', writer: W[1] }]]
  t.true(checkViews([replica(0, want), replica(1, want)], log, [], W[2]).converged)
  const doubt = [{ region: 'r1', sensor: 'a', value: 9, writer: W[0] }]
  const raised: Array<[string, Shown]> = [['a', { value: 9, t: '0009', writer: W[0] }], want[1]]
  t.true(checkViews([replica(0, raised), replica(1, raised)], log, doubt, W[2]).converged)
  // ... but then every replica must show it.
  const half = checkViews([replica(0, raised), replica(1, want)], log, doubt, W[2])
  t.false(half.converged)
  t.deepEqual(half.divergent, [1])
  t.is(half.lost.length, 0)
})

test('the view check reports lost, older, phantom, wrong-valued and fenced readings', t => {
  const log = [acked('a', '0001', W[0], 1), acked('a', '0002', W[1], 2), acked('b', '0003', W[0], 3)]
  const good: Array<[string, Shown]> = [['a', { value: 2, t: '0002', writer: W[1] }], ['b', { value: 3, t: '0003', writer: W[0] }]]
  const cases: Array<[string, Array<[string, Shown]>, boolean]> = [
    ['missing', [good[0]], true],
    ['older', [['a', { value: 1, t: '0001', writer: W[0] }], good[1]], true],
    ['phantom', [...good, ['c', { value: 5, t: '0004', writer: W[0] }]], false],
    ['newer than any write', [['a', { value: 7, t: '0007', writer: W[1] }], good[1]], false],
    ['wrong value', [['a', { value: 3, t: '0002', writer: W[1] }], good[1]], false],
    ['fenced', [...good, ['d', { value: 6, t: '0100', writer: W[2] }]], false]
  ]
  for (const [what, view, lost] of cases) {
    const check = checkViews([replica(0, good), replica(1, view)], log, [], W[2])
    t.false(check.converged, what)
    t.deepEqual(check.divergent, [1], what)
    t.is(check.lost.length > 0, lost, what)
  }
})

test('the HLC check catches a timestamp acknowledged after a restart that is not above those before it', t => {
  const ok = [acked('a', '0005', W[0], 1, 0, 0), acked('b', '0003', W[0], 2, 0, 0), acked('a', '0006', W[0], 3, 0, 1), acked('c', '0001', W[1], 4, 1, 1)]
  t.deepEqual(checkHlcAcrossRestarts(ok), [])
  const bad = [...ok, acked('b', '0004', W[0], 5, 0, 2)]
  t.is(checkHlcAcrossRestarts(bad).length, 1)
})

test('the monotonic-read check catches a t going back and a sensor vanishing, within a life and across restarts', t => {
  const m = new MonotonicReads(0)
  m.observe('r1', 'a', undefined, 0)
  m.observe('r1', 'a', { t: '0002', writer: W[0] }, 0)
  m.observe('r1', 'a', { t: '0002', writer: W[0] }, 1)
  m.observe('r1', 'a', { t: '0003', writer: W[1] }, 1)
  m.observe('r1', 'b', { t: '0004', writer: W[0] }, 1)
  t.deepEqual(m.backward, [])
  m.observe('r1', 'a', { t: '0001', writer: W[0] }, 1) // back within a life
  m.observe('r1', 'a', undefined, 2) // gone after a restart
  m.observe('r1', 'b', { t: '0001', writer: W[1] }, 2) // back after a restart
  m.observe('r1', 'b', { t: '0001', writer: W[1] }, 2) // the same step back is reported once
  t.is(m.reads, 9)
  t.deepEqual(m.backward.map(b => [b.sensor, b.before.t, b.after?.t, b.before.life, b.life]), [
    ['a', '0003', '0001', 1, 1], ['a', '0001', undefined, 1, 2], ['b', '0004', '0001', 1, 2]
  ])
})

for (const seed of SEEDS) {
  test.serial(`chaos seed ${seed}: views identical and equal to the model, nothing acknowledged lost, reads monotonic, HLCs forward, the skewed gateway fenced`, async t => {
    const r = await runSeed(seed, { profile: SHORT_PROFILE })
    t.log(`seed ${seed}: ${r.faults} faults, ${r.acked} acked, ${r.fenced} fenced, ${r.inDoubt} in doubt, ${r.restarts} restarts, ` +
      `converged in ${r.convergeMs ?? '-'} ms, ${r.refusedFrames} refused frames, ${r.reads} reads, ${(r.wallMs / 1000).toFixed(1)} s`)
    t.true(r.ok, describeFailure(r))
    t.is(r.lost, 0)
    t.is(r.divergentReplicas, 0)
    t.true(r.acked > 0 && r.fenced > 0, 'readings were acknowledged within and beyond the drift bound')
    t.true(r.refusedFrames > 0, 'receivers counted the skewed gateway\'s frames as refused')
  })
}
