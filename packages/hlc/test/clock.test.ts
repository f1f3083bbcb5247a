import test from 'ava'
import type { ClockDriftError } from '@edge-mesh/errors'
import { MAX_LOGICAL, ZERO_TIMESTAMP, createHlc, decodeTimestamp, encodeTimestamp, wallOf } from '../src/index.ts'
import { fakeClock } from './fake-clock.ts'

const T0 = 1_700_000_000_000

test('now() follows the physical clock with logical 0 while it advances, and counts logical while it stands still', t => {
  const physical = fakeClock(T0)
  const clock = createHlc({ now: physical.now })
  t.deepEqual(decodeTimestamp(clock.now()), { wall: T0, logical: 0 })
  t.deepEqual(decodeTimestamp(clock.now()), { wall: T0, logical: 1 })
  physical.ms += 5
  t.deepEqual(decodeTimestamp(clock.now()), { wall: T0 + 5, logical: 0 })
})

test('when the physical clock goes backwards the clock keeps its wall and still moves forward', t => {
  const physical = fakeClock(T0)
  const clock = createHlc({ now: physical.now })
  const before = clock.now()
  physical.ms -= 10_000
  const after = clock.now()
  t.true(after > before)
  t.deepEqual(decodeTimestamp(after), { wall: T0, logical: 1 })
})

test('a fractional physical clock is floored to whole milliseconds', t => {
  const clock = createHlc({ now: () => T0 + 0.75 })
  t.deepEqual(decodeTimestamp(clock.now()), { wall: T0, logical: 0 })
})

test('defaults: Date.now as physical clock, 60 s drift bound, starting from ZERO_TIMESTAMP', t => {
  const clock = createHlc()
  t.is(clock.maxDriftMs, 60_000)
  t.is(clock.last(), ZERO_TIMESTAMP)
  const before = Date.now()
  const wall = wallOf(clock.now())
  t.true(wall >= before && wall <= Date.now())
})

test('methods work when detached from the clock object', t => {
  const physical = fakeClock(T0)
  const { now, last } = createHlc({ now: physical.now })
  const ts = now()
  t.is(last(), ts)
})

test('receive() beyond now + maxDriftMs throws EM_ERR_CLOCK_DRIFT and leaves last() unchanged', t => {
  const physical = fakeClock(T0)
  const clock = createHlc({ now: physical.now, maxDriftMs: 1_000 })
  clock.now()
  const before = clock.last()
  const remote = encodeTimestamp({ wall: T0 + 1_001, logical: 0 })
  const err = t.throws<ClockDriftError>(() => clock.receive(remote), { code: 'EM_ERR_CLOCK_DRIFT', name: 'ClockDriftError' })
  t.like(err?.details, { remoteWallMs: T0 + 1_001, localWallMs: T0, maxDriftMs: 1_000 })
  t.is(clock.last(), before)
  t.is(clock.now(), encodeTimestamp({ wall: T0, logical: 1 }))
})

test('receive() exactly at now + maxDriftMs is accepted and moves the clock past the remote', t => {
  const physical = fakeClock(T0)
  const clock = createHlc({ now: physical.now, maxDriftMs: 1_000 })
  const remote = encodeTimestamp({ wall: T0 + 1_000, logical: 7 })
  t.is(clock.receive(remote), encodeTimestamp({ wall: T0 + 1_000, logical: 8 }))
  t.true(clock.now() > remote)
})

test('maxDriftMs 0 accepts remotes up to the physical clock and rejects 1 ms ahead', t => {
  const physical = fakeClock(T0)
  const clock = createHlc({ now: physical.now, maxDriftMs: 0 })
  t.notThrows(() => clock.receive(encodeTimestamp({ wall: T0, logical: 0 })))
  t.throws(() => clock.receive(encodeTimestamp({ wall: T0 + 1, logical: 0 })), { code: 'EM_ERR_CLOCK_DRIFT' })
})

test('checkDrift() throws EM_ERR_CLOCK_DRIFT beyond the bound, accepts at the bound, and never changes state', t => {
  const physical = fakeClock(T0)
  const clock = createHlc({ now: physical.now, maxDriftMs: 1_000 })
  t.throws(() => clock.checkDrift(encodeTimestamp({ wall: T0 + 1_001, logical: 0 })), { code: 'EM_ERR_CLOCK_DRIFT' })
  t.notThrows(() => clock.checkDrift(encodeTimestamp({ wall: T0 + 1_000, logical: MAX_LOGICAL })))
  t.is(clock.last(), ZERO_TIMESTAMP)
})

test('a clock created with last from another clock never issues <= it, even with the physical clock far behind', t => {
  const ahead = fakeClock(T0 + 3_600_000)
  const first = createHlc({ now: ahead.now })
  for (let i = 0; i < 10; i++) first.now()
  const persisted = first.last()

  // Restart after the machine's clock was set back an hour.
  const behind = fakeClock(T0)
  const restarted = createHlc({ now: behind.now, last: persisted })
  t.is(restarted.last(), persisted)
  let previous = persisted
  for (let i = 0; i < 1_000; i++) {
    const ts = restarted.now()
    t.true(ts > previous)
    previous = ts
  }
  t.is(wallOf(previous), T0 + 3_600_000)
})

test('restore() advances the clock past a newer timestamp without a drift check and ignores older ones', t => {
  const physical = fakeClock(T0)
  const clock = createHlc({ now: physical.now, maxDriftMs: 0 })
  const farAhead = encodeTimestamp({ wall: T0 + 86_400_000, logical: 3 })
  clock.restore(farAhead)
  t.is(clock.last(), farAhead)
  clock.restore(encodeTimestamp({ wall: T0, logical: 0 }))
  t.is(clock.last(), farAhead)
  t.is(clock.now(), encodeTimestamp({ wall: T0 + 86_400_000, logical: 4 }))
})

test('logical overflow in now() advances wall by 1 ms and resets logical to 0', t => {
  const physical = fakeClock(T0)
  const clock = createHlc({ now: physical.now, last: encodeTimestamp({ wall: T0, logical: MAX_LOGICAL - 1 }) })
  t.deepEqual(decodeTimestamp(clock.now()), { wall: T0, logical: MAX_LOGICAL })
  t.deepEqual(decodeTimestamp(clock.now()), { wall: T0 + 1, logical: 0 })
  t.deepEqual(decodeTimestamp(clock.now()), { wall: T0 + 1, logical: 1 })
})

test('a frozen physical clock never stalls: 200 000 now() calls stay strictly increasing', t => {
  const clock = createHlc({ now: () => T0 })
  let previous = clock.now()
  let increasing = true
  for (let i = 0; i < 200_000; i++) {
    const ts = clock.now()
    if (!(ts > previous)) increasing = false
    previous = ts
  }
  t.true(increasing)
  t.deepEqual(decodeTimestamp(previous), { wall: T0 + 3, logical: 200_000 - 3 * 65_536 })
})

test('logical overflow in receive() advances wall past the remote', t => {
  const physical = fakeClock(T0)
  const clock = createHlc({ now: physical.now })
  const remote = encodeTimestamp({ wall: T0, logical: MAX_LOGICAL })
  t.is(clock.receive(remote), encodeTimestamp({ wall: T0 + 1, logical: 0 }))
})

test('a clock at the largest encodable timestamp throws EM_ERR_INVALID_TIMESTAMP instead of wrapping', t => {
  const clock = createHlc({ now: () => T0, last: 'ffffffffffffffff' })
  t.throws(() => clock.now(), { code: 'EM_ERR_INVALID_TIMESTAMP' })
  t.is(clock.last(), 'ffffffffffffffff')
})

test('receive, checkDrift and restore reject malformed timestamps with EM_ERR_INVALID_TIMESTAMP', t => {
  const clock = createHlc({ now: () => T0 })
  for (const bad of ['', '0123456789ABCDEF', '000000000000000', '00000000000000000', 'zzzzzzzzzzzzzzzz', 42, null]) {
    t.throws(() => clock.receive(bad as string), { code: 'EM_ERR_INVALID_TIMESTAMP' }, String(bad))
    t.throws(() => clock.checkDrift(bad as string), { code: 'EM_ERR_INVALID_TIMESTAMP' }, String(bad))
    t.throws(() => clock.restore(bad as string), { code: 'EM_ERR_INVALID_TIMESTAMP' }, String(bad))
  }
  t.is(clock.last(), ZERO_TIMESTAMP)
})

test('invalid options throw EM_ERR_INVALID_OPTIONS', t => {
  const bad: unknown[] = [
    { maxDriftMs: -1 }, { maxDriftMs: Number.NaN }, { maxDriftMs: Infinity }, { maxDriftMs: '100' },
    { last: 'not a timestamp' }, { last: '0123456789ABCDEF' }, { last: 5 }, { now: 5 }
  ]
  for (const init of bad) {
    t.throws(() => createHlc(init as never), { code: 'EM_ERR_INVALID_OPTIONS', name: 'InvalidOptionsError' }, JSON.stringify(init))
  }
  t.notThrows(() => createHlc({ maxDriftMs: 0, last: ZERO_TIMESTAMP }))
})
