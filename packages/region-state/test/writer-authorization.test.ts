/**
 * Writer authorization: a region given the set of writers allowed to write it refuses, whole and
 * with state unchanged, any remote update carrying a chunk of another writer.
 */
import test from 'ava'
import { fakeClock, fingerprint, recordLocalUpdates, region } from './helpers.ts'

test('an update from an allowed writer is applied; one from any other writer is refused with EM_ERR_UNAUTHORIZED_WRITER and changes nothing', t => {
  const clock = fakeClock()
  const r = region(clock, { writer: 'gw-a', writers: ['gw-a', 'gw-b'] })
  const b = region(clock, { writer: 'gw-b' })
  const intruder = region(clock, { writer: 'analytics-1' })
  const fromB = recordLocalUpdates(b)
  const fromIntruder = recordLocalUpdates(intruder)
  r.put('mine', 1)
  b.put('line-1/temp', 20)
  intruder.put('line-1/temp', 99)
  intruder.put('new-sensor', 1)

  t.is(r.applyUpdate(fromB[0]).changed, 1)
  const before = fingerprint(r)
  let changes = 0
  r.on('change', () => { changes++ })
  for (const u of fromIntruder) t.throws(() => r.applyUpdate(u), { code: 'EM_ERR_UNAUTHORIZED_WRITER' })
  // A mixed update (the allowed writer's state together with the intruder's) is refused whole.
  b.applyUpdate(fromIntruder[0])
  t.throws(() => r.applyUpdate(b.encodeStateAsUpdate()), { code: 'EM_ERR_UNAUTHORIZED_WRITER' })
  t.deepEqual(fingerprint(r), before)
  t.is(changes, 0)
  t.is(r.get('line-1/temp')?.value, 20)
  t.is(r.get('new-sensor'), undefined)
})

test('without a writers list every writer is accepted; a read-only replica can hold a list; a writable replica must be in its own list', t => {
  const clock = fakeClock()
  const open = region(clock, { writer: 'gw-a' })
  const other = region(clock, { writer: 'anyone' })
  const updates = recordLocalUpdates(other)
  other.put('s', 1)
  t.is(open.applyUpdate(updates[0]).changed, 1)
  t.is(open.writers, undefined)

  const follower = region(clock, { writer: undefined, readOnly: true, writers: ['anyone'] })
  t.is(follower.applyUpdate(updates[0]).changed, 1)
  t.deepEqual([...(follower.writers ?? [])], ['anyone'])

  t.throws(() => region(clock, { writer: 'gw-a', writers: ['gw-b'] }), { code: 'EM_ERR_INVALID_OPTIONS' })
  t.throws(() => region(clock, { writer: 'gw-a', writers: ['gw-a', ''] }), { code: 'EM_ERR_INVALID_OPTIONS' })
})
