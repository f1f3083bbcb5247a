import test from 'ava'
import { settlesWithin } from '../src/index.ts'

test('settlesWithin: true for a promise that resolves or rejects within the bound, false for one that does not', async t => {
  t.true(await settlesWithin(Promise.resolve(1), 1000))
  t.true(await settlesWithin(Promise.reject(new Error('its outcome is ignored')), 1000))
  t.true(await settlesWithin(new Promise(resolve => setTimeout(resolve, 5)), 5000))
  t.false(await settlesWithin(new Promise(() => {}), 20))
})

test('settlesWithin leaves no timer behind', async t => {
  const before = process.getActiveResourcesInfo().filter(r => r === 'Timeout').length
  await settlesWithin(Promise.resolve(), 60_000)
  t.is(process.getActiveResourcesInfo().filter(r => r === 'Timeout').length, before)
})
