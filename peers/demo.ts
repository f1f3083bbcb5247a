/**
 * `npm start`: a short local demonstration of region state converging.
 *
 * Three gateway replicas of one region, each with its own LevelDB store in a temp dir, write
 * readings over a simulated network that loses 20% of messages and delivers the rest out of
 * order. One replica is cut off for a while; everyone keeps writing. Then anti-entropy (state
 * vector sync) runs and every replica shows the same view. One replica is restarted from its
 * data dir on the way. The real libp2p mesh replaces the simulated network in a later release.
 *
 *   npm start                      run the demonstration (about 5 seconds)
 *   npm start -- --help            this text
 *   npm start -- --data <dir>      keep the LevelDB stores in <dir> instead of a temp dir
 */
import { mkdtemp, rm, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createRegionState, type RegionState } from '@edge-mesh/region-state'
import { openPersistence, type BoundRegion, type Persistence } from '@edge-mesh/persistence'
import { prng } from '@edge-mesh/testkit'

const HELP = `edge-mesh demo: three replicas of a region converge over a lossy network

Usage: npm start [-- --data <dir>] [-- --seed <n>]

Options:
  --data <dir>   keep each replica's LevelDB store under <dir> (default: a temp dir, removed at exit)
  --seed <n>     seed of the simulated network (default: 7)
  -h, --help     show this help
`

interface Replica {
  name: string
  dir: string
  store: Persistence
  region: RegionState
  bound: BoundRegion
  inbox: Uint8Array[]
}


async function main (): Promise<void> {
  const { values } = parseArgs({
    options: { data: { type: 'string' }, seed: { type: 'string', default: '7' }, help: { type: 'boolean', short: 'h' } },
    strict: true
  })
  if (values.help === true) {
    process.stdout.write(HELP)
    return
  }
  const seed = Number(values.seed)
  if (!Number.isInteger(seed)) throw new Error(`--seed must be an integer, got ${values.seed}`)
  const rnd = prng(seed)
  const root = values.data ?? await mkdtemp(join(tmpdir(), 'edge-mesh-demo-'))
  await mkdir(root, { recursive: true })
  const log = (msg: string): void => { process.stdout.write(msg + '\n') }
  log(`edge-mesh demo: 3 replicas of region "plant-1", data in ${root}`)

  const replicas: Replica[] = []
  let cutOff: Replica | undefined
  let sent = 0
  let lost = 0
  const open = async (name: string): Promise<Replica> => {
    const dir = join(root, name)
    const store = await openPersistence({ path: dir, snapshotMinBytes: 256 * 1024 })
    const region = createRegionState({ region: 'plant-1', writer: name, hlc: store.clock, compaction: { stepReadings: 256 } })
    const bound = await store.bind(region)
    const r: Replica = { name, dir, store, region, bound, inbox: [] }
    region.on('update', (update, local) => {
      if (!local) return
      for (const other of replicas) {
        if (other === r || other.name === r.name) continue
        sent++
        if (rnd() < 0.2 || cutOff === r || cutOff === other) { lost++; continue }
        other.inbox.push(update)
      }
    })
    return r
  }
  for (const name of ['gw-a', 'gw-b', 'gw-c']) replicas.push(await open(name))

  const deliverSome = (): void => {
    for (const r of replicas) {
      // out of order: deliver a random half of the inbox
      for (let k = r.inbox.length; k > 0; k--) {
        if (rnd() < 0.5) continue
        const i = Math.floor(rnd() * r.inbox.length)
        r.region.applyUpdate(r.inbox.splice(i, 1)[0])
      }
    }
  }
  const sensors = Array.from({ length: 200 }, (_, i) => `line-${i % 4}/sensor-${i}`)
  const writeRound = (n: number): void => {
    for (const r of replicas) {
      r.region.putMany(Array.from({ length: n }, () => ({
        sensor: sensors[Math.floor(rnd() * sensors.length)],
        value: Math.round((20 + rnd() * 10) * 100) / 100
      })))
    }
  }
  const status = (phase: string): void => {
    const views = replicas.map(r => r.region.list().map(s => `${s}@${r.region.get(s)?.t}`).join(','))
    const same = views.every(v => v === views[0])
    const line = replicas.map(r => `${r.name}: ${r.region.size} sensors, ${r.region.stats().ownLogReadings} log`).join(' | ')
    log(`[${phase.padEnd(10)}] ${line} | sent ${sent}, lost ${lost} | ${same ? 'CONVERGED' : 'diverged'}`)
  }

  for (let i = 0; i < 20; i++) { writeRound(50); deliverSome() }
  status('writing')
  cutOff = replicas[2]
  log('-- gw-c is cut off; everyone keeps writing')
  for (let i = 0; i < 20; i++) { writeRound(50); deliverSome() }
  status('partition')

  log('-- gw-b restarts from its data dir')
  await replicas[1].bound.whenDurable()
  await replicas[1].store.close()
  replicas[1].region.close()
  const inbox = replicas[1].inbox
  replicas[1] = await open('gw-b')
  replicas[1].inbox = inbox
  log(`   gw-b reloaded ${replicas[1].region.size} sensors in ${replicas[1].bound.loaded.ms.toFixed(0)} ms`)

  cutOff = undefined
  log('-- the partition heals; anti-entropy (state-vector sync) between every pair')
  deliverSome()
  status('healed')
  for (const a of replicas) {
    for (const b of replicas) {
      if (a !== b) b.region.applyUpdate(a.region.encodeStateAsUpdate(b.region.encodeStateVector()))
    }
  }
  status('synced')
  const sample = sensors[0]
  for (const r of replicas) {
    const v = r.region.get(sample)
    log(`   ${r.name} ${sample} = ${JSON.stringify(v?.value)} (t ${v?.t}, writer ${v?.writer})`)
  }
  for (const r of replicas) {
    await r.store.close()
    r.region.close()
  }
  if (values.data === undefined) await rm(root, { recursive: true, force: true })
  const views = replicas.map(r => JSON.stringify(r.region.list().map(s => r.region.winner(s)?.t)))
  if (!views.every(v => v === views[0])) {
    log('replicas did not converge')
    process.exitCode = 1
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
})
