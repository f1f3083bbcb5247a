/**
 * Yamux window updates at half the window (src/yamux-window.ts): a receiver tops up its sender's
 * credit once half the window is used, data still flows past many windows in order, the SYN/ACK
 * of a new stream still goes at once, and between two mesh peers a run of gossip frames no longer
 * brings one update back per frame.
 */
import test from 'ava'
import { Uint8ArrayList } from 'uint8arraylist'
import { defaultLogger } from '@libp2p/logger'
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import { installWindowUpdateHysteresis, updateDue } from '../src/yamux-window.ts'
import { replaceMethodOnce } from '../src/replace-method.ts'
import { REGION, TOPIC, startPeer, waitFor } from './helpers.ts'

installWindowUpdateHysteresis()

const WINDOW = 256 * 1024
const DATA = 0
const WINDOW_UPDATE = 1
const SYN = 1
const ACK = 2

interface Header { type: number, flag: number, streamID: number, length: number }

test('an update is due once half the window is used, or when it carries a flag', t => {
  t.false(updateDue(WINDOW, WINDOW, 0), 'nothing used')
  t.false(updateDue(WINDOW, WINDOW - 4400, 0), 'one frame used')
  t.false(updateDue(WINDOW, WINDOW / 2 + 1, 0), 'just under half used')
  t.true(updateDue(WINDOW, WINDOW / 2, 0), 'half used')
  t.true(updateDue(WINDOW, 0, 0), 'all used')
  t.true(updateDue(WINDOW, WINDOW, SYN), 'a SYN goes with nothing used')
  t.true(updateDue(WINDOW, WINDOW - 10, ACK), 'an ACK goes with little used')
})

test('installing twice keeps one replacement', t => {
  const method = (YamuxStream.prototype as unknown as Record<string, unknown>).sendWindowUpdate
  t.true(installWindowUpdateHysteresis())
  t.is((YamuxStream.prototype as unknown as Record<string, unknown>).sendWindowUpdate, method)
})

/**
 * Two yamux streams wired back to back: what one sends reaches the other a microtask later, as
 * frames. Returns the two ends and the headers each end sent.
 */
function pair (state: StreamState): { a: YamuxStream, b: YamuxStream, sentByA: Header[], sentByB: Header[] } {
  const sentByA: Header[] = []
  const sentByB: Header[] = []
  const ends: YamuxStream[] = []
  const make = (i: number, sent: Header[]): YamuxStream => new YamuxStream({
    id: '1',
    streamId: 1,
    state,
    direction: i === 0 ? 'outbound' : 'inbound',
    log: defaultLogger().forComponent(`test:yamux-window:${i}`),
    getRTT: () => -1,
    sendFrame: (header: Header, body?: Uint8ArrayList) => {
      sent.push({ ...header })
      const data = body === undefined ? undefined : new Uint8ArrayList(body.subarray())
      queueMicrotask(() => {
        const other = ends[1 - i]
        if (header.type === DATA) other.handleData({ header, data: data ?? new Uint8ArrayList() } as unknown as Parameters<YamuxStream['handleData']>[0])
        else if (header.type === WINDOW_UPDATE) other.handleWindowUpdate({ header })
      })
      return true
    }
  } as unknown as ConstructorParameters<typeof YamuxStream>[0])
  ends.push(make(0, sentByA), make(1, sentByB))
  return { a: ends[0], b: ends[1], sentByA, sentByB }
}

test('8 MB in 4.4 kB messages arrive whole and in order, with an update per half window', async t => {
  const { a, b, sentByB } = pair(StreamState.Established)
  const MESSAGE = 4400
  const COUNT = 2000
  const received: Uint8Array[] = []
  let bytes = 0
  b.addEventListener('message', (e) => {
    const d = e.data
    const chunk = d instanceof Uint8Array ? d : d.subarray()
    received.push(chunk)
    bytes += chunk.byteLength
  })
  for (let i = 0; i < COUNT; i++) {
    const m = new Uint8Array(MESSAGE).fill(i & 0xff)
    m[0] = i >> 8
    if (!a.send(m)) await new Promise<void>(resolve => { a.addEventListener('drain', () => { resolve() }, { once: true }) })
  }
  await waitFor(() => bytes === MESSAGE * COUNT, 'every byte at the receiver', { explain: () => ({ bytes }) })
  const all = new Uint8ArrayList(...received).subarray()
  let inOrder = true
  for (let i = 0; i < COUNT && inOrder; i++) {
    const at = i * MESSAGE
    inOrder = all[at] === i >> 8 && all[at + 1] === (i & 0xff) && all[at + MESSAGE - 1] === (i & 0xff)
  }
  t.true(inOrder, 'the bytes arrive in the order sent')
  const updates = sentByB.filter(h => h.type === WINDOW_UPDATE)
  const total = MESSAGE * COUNT
  t.true(updates.length >= Math.floor(total / WINDOW), `the sender's credit is topped up (${updates.length} updates)`)
  t.true(updates.length <= Math.ceil(total / (WINDOW / 2)) + 1, `at most one update per half window: ${updates.length} for ${COUNT} messages`)
  for (const u of updates) t.true(u.length >= WINDOW / 2, `each update grants at least half a window (${u.length})`)
})

test('the SYN and the ACK of a new stream go at once with nothing used; a little use sends nothing', t => {
  const update = (s: YamuxStream): void => { (s as unknown as { sendWindowUpdate: () => void }).sendWindowUpdate() }
  const opening = pair(StreamState.Init)
  update(opening.a)
  t.deepEqual(opening.sentByA.map(h => [h.type, h.flag, h.length]), [[WINDOW_UPDATE, SYN, 0]], 'the opener\'s SYN')
  const answering = pair(StreamState.SYNReceived)
  update(answering.b)
  t.deepEqual(answering.sentByB.map(h => [h.type, h.flag, h.length]), [[WINDOW_UPDATE, ACK, 0]], 'the answer\'s ACK')
  const open = pair(StreamState.Established)
  ;(open.b as unknown as { recvWindowCapacity: number }).recvWindowCapacity = WINDOW - 4400
  update(open.b)
  t.is(open.sentByB.length, 0, 'one frame used: no update')
  ;(open.b as unknown as { recvWindowCapacity: number }).recvWindowCapacity = WINDOW / 2
  update(open.b)
  t.deepEqual(open.sentByB.map(h => [h.type, h.flag, h.length]), [[WINDOW_UPDATE, 0, WINDOW / 2]], 'half used: the half is granted again')
})

test('between two mesh peers, gossip frames no longer bring one window update back each', async t => {
  // Counts the window updates every yamux stream of this process receives.
  let updates = 0
  replaceMethodOnce<(frame: unknown) => void>(YamuxStream.prototype, 'handleWindowUpdate', original => function (this: YamuxStream, frame) {
    updates++
    original.call(this, frame)
  })
  const a = await startPeer(t)
  const b = await startPeer(t, { bootstrap: [a.addrs()[0]] })
  await waitFor(() => a.node.services.pubsub.getSubscribers(TOPIC).length === 1 && b.node.services.pubsub.getSubscribers(TOPIC).length === 1, 'the peers see each other on the region topic')
  const FRAMES = 300
  const before = updates
  const sensors = Array.from({ length: 100 }, (_, i) => `line-1/sensor-${i}`)
  for (let i = 0; i < FRAMES; i++) {
    a.region(REGION).putMany(sensors.map(sensor => ({ sensor, value: i })))
    await new Promise(resolve => setTimeout(resolve, 6))
  }
  await waitFor(() => b.region(REGION).get('line-1/sensor-99')?.value === FRAMES - 1, 'the last frame at the other peer')
  const frames = a.stats().framesOut
  t.true(frames >= FRAMES / 2, `the writes went out as gossip frames (${frames})`)
  const seen = updates - before
  t.true(seen < frames / 5, `${seen} window updates for ${frames} frames`)
})
