import test from 'ava'
import { createRegionState, HARD_MAX_VALUE_BYTES, type RegionStateInit } from '../src/index.ts'
import { fakeClock, recordLocalUpdates, region } from './helpers.ts'

const base: RegionStateInit = { region: 'eu-west', writer: 'gw-a', maintenanceIntervalMs: 0 }

const invalid: Array<[string, Record<string, unknown>]> = [
  ['an empty region', { region: '' }],
  ['a non-string region', { region: 42 }],
  ['a missing region', { region: undefined }],
  ['a region with a key separator', { region: 'eu!west' }],
  ['a region with a slash', { region: 'eu/west' }],
  ['a region over 64 characters', { region: 'r'.repeat(65) }],
  ['a region starting with a dot', { region: '.eu' }],
  ['a writable region without writer', { writer: undefined }],
  ['an empty writer', { writer: '' }],
  ['a writer over 128 characters', { writer: 'w'.repeat(129) }],
  ['a writer with a control character', { writer: 'gw\n1' }],
  ['a non-string writer', { writer: 7 }],
  ['compaction.ratio below 1', { compaction: { ratio: 0.5 } }],
  ['compaction.ratio 0', { compaction: { ratio: 0 } }],
  ['compaction.ratio NaN', { compaction: { ratio: NaN } }],
  ['compaction.ratio negative', { compaction: { ratio: -2 } }],
  ['compaction.stepReadings 0', { compaction: { stepReadings: 0 } }],
  ['compaction.stepReadings fractional', { compaction: { stepReadings: 2.5 } }],
  ['maxValueBytes 0', { maxValueBytes: 0 }],
  ['maxValueBytes negative', { maxValueBytes: -1 }],
  ['maxValueBytes NaN', { maxValueBytes: NaN }],
  ['maxValueBytes above the hard maximum', { maxValueBytes: HARD_MAX_VALUE_BYTES + 1 }],
  ['maxChunkReadings 0', { maxChunkReadings: 0 }],
  ['maxChunkReadings fractional', { maxChunkReadings: 1.5 }],
  ['sweepBatch 0', { sweepBatch: 0 }],
  ['retentionMs 0', { retentionMs: 0 }],
  ['retentionMs negative', { retentionMs: -1 }],
  ['retentionMs NaN', { retentionMs: NaN }]
]

for (const [name, override] of invalid) {
  test(`options: ${name} throws EM_ERR_INVALID_OPTIONS`, t => {
    t.throws(() => createRegionState({ ...base, ...override } as RegionStateInit), { code: 'EM_ERR_INVALID_OPTIONS', name: 'InvalidOptionsError' })
  })
}

test('options: boundary values are accepted', t => {
  const clock = fakeClock()
  t.notThrows(() => createRegionState({ ...base, now: clock.now, compaction: { ratio: 1, stepReadings: 1 }, maxChunkReadings: 1, sweepBatch: 1 }))
  t.notThrows(() => createRegionState({ ...base, maxValueBytes: 1 }))
  t.notThrows(() => createRegionState({ ...base, maxValueBytes: HARD_MAX_VALUE_BYTES }))
  t.notThrows(() => createRegionState({ ...base, writer: 'w'.repeat(128) }))
  t.notThrows(() => createRegionState({ ...base, retentionMs: 1 }))
  t.notThrows(() => createRegionState({ region: 'r', readOnly: true, maintenanceIntervalMs: 0 }))
})

test('after close(), put, putMany, delete, write and applyUpdate throw EM_ERR_CLOSED', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a' })
  const other = region(clock, { writer: 'gw-b' })
  const ub = recordLocalUpdates(other)
  other.put('x', 1)
  a.put('s', 1)
  a.close()
  t.throws(() => a.put('s', 2), { code: 'EM_ERR_CLOSED', name: 'ClosedError' })
  t.throws(() => a.putMany([{ sensor: 's', value: 2 }]), { code: 'EM_ERR_CLOSED' })
  t.throws(() => a.delete('s'), { code: 'EM_ERR_CLOSED' })
  t.throws(() => a.write([{ sensor: 's', value: 2 }]), { code: 'EM_ERR_CLOSED' })
  t.throws(() => a.applyUpdate(ub[0]), { code: 'EM_ERR_CLOSED' })
})

test('closed beats read-only: a closed read-only replica throws EM_ERR_CLOSED on writes', t => {
  const ro = region(fakeClock(), { readOnly: true })
  ro.close()
  t.throws(() => ro.put('s', 1), { code: 'EM_ERR_CLOSED' })
})

test('after close(), reads still work and maintenance does nothing', t => {
  const clock = fakeClock()
  const a = region(clock, { writer: 'gw-a', retentionMs: 1_000 })
  for (let i = 0; i < 5; i++) a.put('s', i)
  a.close()
  t.is(a.get('s')?.value, 4)
  t.deepEqual(a.list(), ['s'])
  t.is(a.compactStep(), undefined)
  clock.ms += 5_000
  t.notThrows(() => a.maintain())
  t.is(a.stats().expired, 0)
})

test('close() is idempotent', t => {
  const a = region(fakeClock())
  a.close()
  t.notThrows(() => a.close())
  t.throws(() => a.put('s', 1), { code: 'EM_ERR_CLOSED' })
})
