import test from 'ava'
import {
  ERROR_CODES, EdgeMeshError, type ErrorCode, InvalidValueError, ValueTooLargeError, ClockDriftError, CorruptRecordError,
  httpStatusFor, isEdgeMeshError
} from '../src/index.ts'

test('every error class carries a stable code and name, and maps to its registry status', t => {
  const cases: Array<[EdgeMeshError, ErrorCode, string]> = [
    [new InvalidValueError('bad'), 'EM_ERR_INVALID_VALUE', 'InvalidValueError'],
    [new ValueTooLargeError(10, 5), 'EM_ERR_VALUE_TOO_LARGE', 'ValueTooLargeError'],
    [new ClockDriftError(100_000, 0, 60_000), 'EM_ERR_CLOCK_DRIFT', 'ClockDriftError'],
    [new CorruptRecordError('bad record', { key: 'u/x/1' }), 'EM_ERR_CORRUPT_RECORD', 'CorruptRecordError']
  ]
  for (const [err, code, name] of cases) {
    t.is(err.code, code)
    t.is(err.name, name)
    t.true(err instanceof Error)
    t.true(isEdgeMeshError(err, err.code))
    t.is(httpStatusFor(err), ERROR_CODES[err.code])
  }
})

test('details keep the ids involved and serialise to {error, code}', t => {
  const err = new ValueTooLargeError(70_000, 65_536, { sensor: 's1' })
  t.deepEqual(err.details, { sensor: 's1', bytes: 70_000, limit: 65_536 })
  const json = err.toJSON()
  t.is(json.code, 'EM_ERR_VALUE_TOO_LARGE')
  t.is(typeof json.error, 'string')
})

test('unexpected errors map to 500 and are not edge-mesh errors', t => {
  t.is(httpStatusFor(new TypeError('x')), 500)
  t.false(isEdgeMeshError(new TypeError('x')))
  t.false(isEdgeMeshError(new InvalidValueError('x'), 'EM_ERR_CLOSED'))
})
