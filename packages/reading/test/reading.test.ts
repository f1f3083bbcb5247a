import test from 'ava'
import fc from 'fast-check'
import { isEdgeMeshError } from '@edge-mesh/errors'
import { assertReadingInput, deviceTsOf, fromStored, toStored, type ReadingInput } from '../src/index.ts'

test('bare values are stored as they are', t => {
  t.is(toStored({ sensor: 's', value: 21.5 }), 21.5)
  t.deepEqual(toStored({ sensor: 's', value: [1, 2] }), [1, 2])
  t.deepEqual(toStored({ sensor: 's', value: { ok: true } }), { ok: true })
  t.deepEqual(fromStored(21.5), { value: 21.5 })
  t.deepEqual(fromStored({ ok: true }), { value: { ok: true } })
})

test('unit and device timestamp go into an envelope', t => {
  const stored = toStored({ sensor: 's', value: 3, unit: 'C', ts: 1_700_000_000_000 })
  t.deepEqual(stored, { value: 3, unit: 'C', ts: 1_700_000_000_000 })
  t.deepEqual(fromStored(stored), { value: 3, unit: 'C', ts: 1_700_000_000_000 })
  t.is(deviceTsOf(stored), 1_700_000_000_000)
  t.is(deviceTsOf(3), undefined)
})

test('an object value with a "value" key is wrapped, so decoding is never ambiguous', t => {
  const stored = toStored({ sensor: 's', value: { value: 2 } })
  t.deepEqual(stored, { value: { value: 2 } })
  t.deepEqual(fromStored(stored), { value: { value: 2 } })
})

test('round trip for any input', t => {
  const json = fc.jsonValue() as fc.Arbitrary<ReadingInput['value']>
  fc.assert(fc.property(json, fc.option(fc.string({ minLength: 1, maxLength: 32 }), { nil: undefined }),
    fc.option(fc.integer({ min: 946_684_800_000, max: 4_102_444_800_000 }), { nil: undefined }), (value, unit, ts) => {
      const input: ReadingInput = { sensor: 's', value }
      if (unit !== undefined) input.unit = unit
      if (ts !== undefined) input.ts = ts
      const back = fromStored(toStored(input))
      t.deepEqual(back, { value, ...(unit !== undefined ? { unit } : {}), ...(ts !== undefined ? { ts } : {}) })
    }), { numRuns: 300 })
})

test('input shape errors name the index and field', t => {
  const bad: Array<[unknown, string]> = [
    [null, ''], [[1], ''], [{ value: 1 }, 'sensor'], [{ sensor: 1, value: 1 }, 'sensor'], [{ sensor: 's' }, 'value'],
    [{ sensor: 's', value: 1, ts: 'x' }, 'ts'], [{ sensor: 's', value: 1, ts: 1.5 }, 'ts'], [{ sensor: 's', value: 1, ts: 5 }, 'ts'],
    [{ sensor: 's', value: 1, unit: '' }, 'unit'], [{ sensor: 's', value: 1, unit: 'x'.repeat(33) }, 'unit'],
    [{ sensor: 's', value: 1, extra: true }, 'extra']
  ]
  for (const [input, field] of bad) {
    const err = t.throws(() => { assertReadingInput(input, 7) })
    t.true(isEdgeMeshError(err, 'EM_ERR_INVALID_VALUE'), JSON.stringify(input))
    t.is((err as unknown as { details: { field: string } }).details.field, field)
    t.is((err as unknown as { details: { index: number } }).details.index, 7)
  }
  t.notThrows(() => { assertReadingInput({ sensor: 's', value: null, unit: 'C', ts: 1_700_000_000_000 }) })
})
