/**
 * bench:broker — the central-bridge baseline: Debian's mosquitto on a free loopback port relaying
 * readings from 1 publisher to 3 subscribers, at the rates of bench:mesh's propagation scenario
 * (1k and 10k readings/s), so that "publish → received by every subscriber" can be set against the
 * mesh's "put → visible at every other peer". The publisher sends one MQTT message per reading
 * (QoS 0, as a bridge forwarding device messages would; `--qos 1` for acknowledged delivery), each
 * payload holding a reading like the mesh benchmark's and the send time; the subscribers are in the
 * same process, so one clock times both ends. Installs nothing: if mosquitto is missing it says how
 * to install it and exits 1 (`npm run bench` is run on machines prepared like CI's).
 *
 * Keys: `bench: "broker-relay"`, `ratePerSec`, `subscribers`, `p50Ms`, `p99Ms`, `maxMs` (over every
 * subscriber's receipt), `delivered` (fraction of readings every subscriber got), `qos`, `seconds`.
 * Prints one JSON line per rate; writes bench/results/broker.json.
 *
 *   npm run bench:broker                   1k and 10k readings/s, 5 s each
 *   npm run bench:broker -- --seconds 10 --qos 1
 */
import { performance } from 'node:perf_hooks'
import mqtt, { type MqttClient } from 'mqtt'
import { findMosquitto, startMosquitto } from '../test/helpers/mosquitto.ts'
import { BenchRun, quantiles, round, sleep } from './lib.ts'

const SUBSCRIBERS = 3
const TOPIC_ROOT = 'sensors/bench'
const run = new BenchRun('broker')
const progress = run.progress

async function connect (url: string, id: string): Promise<MqttClient> {
  return await mqtt.connectAsync(url, { clientId: id, reconnectPeriod: 0, protocolVersion: 4 })
}

async function relay (url: string, rate: number, seconds: number, qos: 0 | 1): Promise<Record<string, unknown>> {
  const subs = await Promise.all(Array.from({ length: SUBSCRIBERS }, async (_, i) => await connect(url, `bench-sub-${i}-${process.pid}`)))
  const pub = await connect(url, `bench-pub-${process.pid}`)
  const total = rate * seconds
  const sentAt = new Float64Array(total)
  const lat: number[] = []
  const got = Array.from({ length: SUBSCRIBERS }, () => new Uint8Array(total))
  let received = 0
  for (const [i, s] of subs.entries()) {
    await s.subscribeAsync(`${TOPIC_ROOT}/#`, { qos })
    s.on('message', (_topic, payload) => {
      const now = performance.now()
      const n = JSON.parse(payload.toString()).n as number
      if (n >= 0 && n < total && got[i][n] === 0) {
        got[i][n] = 1
        received++
        lat.push(now - sentAt[n])
      }
    })
  }
  // Paced like the mesh benchmark: every 10 ms, the readings due since the start.
  const start = performance.now()
  let sent = 0
  while (sent < total) {
    const due = Math.min(total, Math.floor((performance.now() - start) / 1000 * rate))
    for (; sent < due; sent++) {
      const payload = JSON.stringify({ n: sent, sensor: `line-${sent % 50}/sensor-${sent % 10_000}`, value: Math.round(Math.random() * 1e5) / 100 })
      sentAt[sent] = performance.now()
      pub.publish(`${TOPIC_ROOT}/line-${sent % 50}/sensor-${sent % 10_000}`, payload, { qos })
    }
    await sleep(10)
  }
  // Let what is in flight arrive (bounded).
  const until = performance.now() + 10_000
  while (received < total * SUBSCRIBERS && performance.now() < until) await sleep(20)
  await Promise.all([...subs, pub].map(async c => { await c.endAsync(true) }))
  const q = quantiles(lat)
  return {
    bench: 'broker-relay',
    ratePerSec: rate,
    subscribers: SUBSCRIBERS,
    p50Ms: q.p50,
    p99Ms: q.p99,
    maxMs: q.max,
    delivered: round(received / (total * SUBSCRIBERS), 4),
    qos,
    seconds
  }
}

async function main (): Promise<void> {
  const args = process.argv.slice(2)
  const opt = (name: string, dflt: number): number => args.includes(name) ? Number(args[args.lastIndexOf(name) + 1]) : dflt
  const seconds = opt('--seconds', 5)
  const qos = opt('--qos', 0)
  if (!(seconds > 0 && seconds <= 600)) throw new Error('--seconds must be between 0 and 600')
  if (qos !== 0 && qos !== 1) throw new Error('--qos must be 0 or 1')
  if (findMosquitto() === undefined) {
    process.stderr.write('bench:broker needs mosquitto: apt-get update && apt-get install -y --no-install-recommends mosquitto\n')
    process.exit(1)
  }
  const broker = await startMosquitto({ maxInflight: 1000 })
  const lines: Array<Record<string, unknown>> = []
  try {
    for (const rate of [1000, 10_000]) {
      progress(`${rate} readings/s for ${seconds} s, 1 publisher -> mosquitto -> ${SUBSCRIBERS} subscribers, QoS ${qos}`)
      const line = await relay(broker.url, rate, seconds, qos)
      lines.push(line)
      run.print(line)
    }
  } finally {
    await broker.stop()
  }
  await run.save(lines)
}

await main()
