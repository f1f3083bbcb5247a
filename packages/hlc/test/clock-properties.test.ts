import assert from 'node:assert/strict'
import test from 'ava'
import fc from 'fast-check'
import { MAX_LOGICAL, createHlc, decodeTimestamp, encodeTimestamp, isTimestamp, wallOf } from '../src/index.ts'
import { fakeClock } from './fake-clock.ts'

const RUNS = { numRuns: 1000 }
const MAX_DRIFT = 5_000
const START = 1_700_000_000_000

type Command =
  | { op: 'now' }
  | { op: 'jump', ms: number }
  | { op: 'receive', ahead: number, logical: number }
  | { op: 'receiveAtLast', wallDelta: number, logical: number }
  | { op: 'restore', wallDelta: number, logical: number }

const logicalArb = fc.oneof(fc.integer({ min: 0, max: MAX_LOGICAL }), fc.constantFrom(0, 1, MAX_LOGICAL - 1, MAX_LOGICAL))
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: fc.constant({ op: 'now' as const }), weight: 6 },
  // Physical clock steps: mostly small, sometimes large, forward and backward.
  { arbitrary: fc.integer({ min: -3, max: 3 }).map(ms => ({ op: 'jump' as const, ms })), weight: 3 },
  { arbitrary: fc.integer({ min: -100_000_000, max: 100_000_000 }).map(ms => ({ op: 'jump' as const, ms })), weight: 1 },
  // Remote walls around the physical clock, including just inside and just beyond the drift bound.
  {
    arbitrary: fc.record({
      op: fc.constant('receive' as const),
      ahead: fc.oneof(fc.integer({ min: -10_000_000, max: MAX_DRIFT + 10 }), fc.constantFrom(MAX_DRIFT, MAX_DRIFT + 1)),
      logical: logicalArb
    }),
    weight: 3
  },
  // Remote walls equal or next to the clock's own wall, to exercise the equal-wall branches of the receive rule.
  { arbitrary: fc.record({ op: fc.constant('receiveAtLast' as const), wallDelta: fc.integer({ min: -1, max: 1 }), logical: logicalArb }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('restore' as const), wallDelta: fc.integer({ min: -1_000, max: 1_000 }), logical: logicalArb }), weight: 1 }
)

test('now() is strictly monotonic and last() is the max of everything seen, over now/receive/restore and physical jumps both ways', t => {
  fc.assert(fc.property(fc.array(commandArb, { maxLength: 120 }), commands => {
    const physical = fakeClock(START)
    const clock = createHlc({ now: physical.now, maxDriftMs: MAX_DRIFT })
    let lastIssued = ''
    for (const cmd of commands) {
      const before = clock.last()
      switch (cmd.op) {
        case 'now': {
          const ts = clock.now()
          assert.ok(isTimestamp(ts))
          assert.ok(ts > lastIssued, 'now() is greater than every earlier now()')
          assert.ok(ts > before, 'now() is greater than last()')
          assert.ok(wallOf(ts) >= physical.ms, 'the clock never lags the physical clock')
          assert.equal(clock.last(), ts)
          lastIssued = ts
          break
        }
        case 'jump':
          physical.ms = Math.max(0, physical.ms + cmd.ms)
          break
        case 'receive':
        case 'receiveAtLast': {
          const wall = cmd.op === 'receive' ? physical.ms + cmd.ahead : wallOf(before) + cmd.wallDelta
          const remote = encodeTimestamp({ wall: Math.max(0, wall), logical: cmd.logical })
          if (wallOf(remote) > physical.ms + MAX_DRIFT) {
            assert.throws(() => clock.receive(remote), { code: 'EM_ERR_CLOCK_DRIFT' })
            assert.equal(clock.last(), before, 'a rejected remote leaves the state unchanged')
          } else {
            const ts = clock.receive(remote)
            assert.ok(isTimestamp(ts))
            assert.ok(ts > remote, 'receive() is greater than the remote')
            assert.ok(ts > before, 'receive() is greater than the previous last()')
            assert.ok(wallOf(ts) >= physical.ms)
            assert.equal(clock.last(), ts)
          }
          break
        }
        case 'restore': {
          const target = encodeTimestamp({ wall: Math.max(0, wallOf(before) + cmd.wallDelta), logical: cmd.logical })
          clock.restore(target)
          assert.equal(clock.last(), target > before ? target : before)
          break
        }
      }
    }
  }), RUNS)
  t.pass()
})

test('receive() follows the HLC paper rule when no logical overflow occurs', t => {
  fc.assert(fc.property(
    fc.integer({ min: -5, max: 5 }), fc.integer({ min: 0, max: 1000 }),
    fc.integer({ min: -5, max: 5 }), fc.integer({ min: 0, max: 1000 }),
    (localDelta, localLogical, remoteDelta, remoteLogical) => {
      const physical = fakeClock(START)
      const local = { wall: START + localDelta, logical: localLogical }
      const remote = { wall: START + remoteDelta, logical: remoteLogical }
      const clock = createHlc({ now: physical.now, last: encodeTimestamp(local) })
      const got = decodeTimestamp(clock.receive(encodeTimestamp(remote)))
      const wall = Math.max(local.wall, remote.wall, START)
      const logical = wall === local.wall && wall === remote.wall
        ? Math.max(local.logical, remote.logical) + 1
        : wall === local.wall ? local.logical + 1 : wall === remote.wall ? remote.logical + 1 : 0
      assert.deepEqual(got, { wall, logical })
    }), RUNS)
  t.pass()
})
