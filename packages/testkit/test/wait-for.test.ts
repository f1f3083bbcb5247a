import test from 'ava'
import { activeResources, waitFor, waitForNoResourcesBeyond } from '../src/index.ts'

test('waitFor resolves once the condition holds, sync or async', async t => {
  let n = 0
  await waitFor(() => ++n >= 3, 'the third check', { everyMs: 1 })
  t.is(n, 3)
  let m = 0
  await waitFor(async () => ++m >= 2, 'the second async check', { everyMs: 1 })
  t.is(m, 2)
})

test('waitFor rejects after its bound, naming what it waited for and the last state', async t => {
  let checks = 0
  const err = await t.throwsAsync(waitFor(() => { checks++; return false }, 'a condition that never holds', { withinMs: 30, everyMs: 5, explain: () => ({ checks }) }))
  t.regex(err?.message ?? '', /timed out after 30 ms waiting for: a condition that never holds; last state: \{"checks":\d+\}/)
  t.true(checks >= 2, 'it checked more than once')
})

test('the open-handle check waits for a resource to close, and fails on one left open', async t => {
  const before = activeResources()
  const timer = setTimeout(() => {}, 60_000)
  t.true((activeResources().get('Timeout') ?? 0) > (before.get('Timeout') ?? 0), 'the timer counts')
  const left = await t.throwsAsync(waitForNoResourcesBeyond(before, { withinMs: 30, everyMs: 5 }))
  t.regex(left?.message ?? '', /no resource beyond the ones open before the test/)
  setTimeout(() => { clearTimeout(timer) }, 10)
  await waitForNoResourcesBeyond(before, { withinMs: 5000 })
  t.pass('closed resources are not counted')
})
