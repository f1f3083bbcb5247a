export { fakeClock, type FakeClock } from '@edge-mesh/testkit'
