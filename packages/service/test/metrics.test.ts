/**
 * Collectors read at scrape time: a follower counter adds what its count grew since the last
 * scrape (nothing for a count that did not grow or went down), per label set; a scraped gauge
 * shows what its source reads now; the mesh and HTTP error metric sets read their sources.
 */
import test from 'ava'
import { Registry } from 'prom-client'
import type { MeshStats } from '@edge-mesh/mesh'
import { createServiceRegistry, followerCounter, oneSample, registerHttpErrorMetrics, registerMeshMetrics, scrapedGauge, type Samples } from '../src/index.ts'

/** The values of one metric as a scrape sees them, keyed by their labels (`{}` for none). */
async function scrape (registry: Registry, name: string): Promise<Record<string, number>> {
  const metric = registry.getSingleMetric(name)
  if (metric === undefined) throw new Error(`no metric ${name}`)
  const out: Record<string, number> = {}
  for (const v of (await metric.get()).values) out[JSON.stringify(v.labels)] = v.value
  return out
}

test('a follower counter is raised by the growth of its count at each scrape; a count that does not grow adds nothing', async t => {
  const registry = new Registry()
  let count: number | undefined
  followerCounter(registry, 'test_things_total', 'Things.', [], () => oneSample(count))
  t.deepEqual(await scrape(registry, 'test_things_total'), { '{}': 0 }, 'nothing counted before the source exists (prom-client shows an unlabelled counter as 0)')
  count = 5
  t.deepEqual(await scrape(registry, 'test_things_total'), { '{}': 5 })
  t.deepEqual(await scrape(registry, 'test_things_total'), { '{}': 5 }, 'a second scrape of the same count adds nothing')
  count = 12
  t.deepEqual(await scrape(registry, 'test_things_total'), { '{}': 12 })
  count = 12
  t.deepEqual(await scrape(registry, 'test_things_total'), { '{}': 12 }, 'a count that does not grow adds nothing')
  count = undefined
  t.deepEqual(await scrape(registry, 'test_things_total'), { '{}': 12 }, 'a source gone keeps the counter')
  count = 3
  t.deepEqual(await scrape(registry, 'test_things_total'), { '{}': 12 }, 'a count that went down (its source restarted) adds nothing')
  count = 10
  t.deepEqual(await scrape(registry, 'test_things_total'), { '{}': 19 }, 'growth is counted from the lower value on')
})

test('a follower counter follows each label set on its own, and a label set first seen adds its whole count', async t => {
  const registry = new Registry()
  let samples: Samples = [[{ direction: 'in' }, 4], [{ direction: 'out' }, 0]]
  followerCounter(registry, 'test_frames_total', 'Frames.', ['direction'], () => samples)
  t.deepEqual(await scrape(registry, 'test_frames_total'), { '{"direction":"in"}': 4 }, 'a zero count shows no series')
  samples = [[{ direction: 'in' }, 4], [{ direction: 'out' }, 7]]
  t.deepEqual(await scrape(registry, 'test_frames_total'), { '{"direction":"in"}': 4, '{"direction":"out"}': 7 })
  samples = [[{ direction: 'in' }, 9], [{ direction: 'out' }, 7], [{ direction: 'dropped' }, 2]]
  t.deepEqual(await scrape(registry, 'test_frames_total'), { '{"direction":"in"}': 9, '{"direction":"out"}': 7, '{"direction":"dropped"}': 2 })
  samples = [[{ direction: 'out' }, 8]]
  t.deepEqual(await scrape(registry, 'test_frames_total'), { '{"direction":"in"}': 9, '{"direction":"out"}': 8, '{"direction":"dropped"}': 2 }, 'a label set not read keeps its value')
})

test('a scraped gauge shows what its source reads at each scrape, and nothing while it is absent', async t => {
  const registry = new Registry()
  let samples: Samples = [[{ region: 'a' }, 3], [{ region: 'b' }, 1]]
  scrapedGauge(registry, 'test_sensors', 'Sensors.', ['region'], () => samples)
  t.deepEqual(await scrape(registry, 'test_sensors'), { '{"region":"a"}': 3, '{"region":"b"}': 1 })
  samples = [[{ region: 'a' }, 2]]
  t.deepEqual(await scrape(registry, 'test_sensors'), { '{"region":"a"}': 2 }, 'it goes down, and a region no longer read is dropped')
  samples = undefined
  t.deepEqual(await scrape(registry, 'test_sensors'), {})
  t.is(oneSample(undefined), undefined)
  t.deepEqual(oneSample(0), [[{}, 0]])
})

const meshStats = (n: number): MeshStats => ({
  peerId: '12D3KooWTest',
  peers: 3,
  bannedPeers: 1,
  framesIn: 10 * n,
  framesOut: 20 * n,
  frameBytesIn: 1000 * n,
  frameBytesOut: 2000 * n,
  invalidFrames: n,
  unauthorizedFrames: 2 * n,
  invalidSyncMessages: 3 * n,
  announcementsIn: 4 * n,
  announcementsOut: 0,
  syncRounds: 5 * n,
  syncFailures: n,
  syncBytesIn: 300 * n,
  syncBytesOut: 400 * n,
  oversizedUpdates: 0,
  cascadeSyncs: 0,
  lastSyncAt: 1_700_000_000_000
})

test('the mesh metrics read the peer\'s stats, the writer authorization refusals included', async t => {
  const plain = createServiceRegistry()
  let stats: MeshStats | undefined
  registerMeshMetrics(plain.registry, () => stats)
  t.deepEqual(await scrape(plain.registry, 'edge_mesh_peers'), { '{}': 0 }, 'no mesh yet: 0 (prom-client shows an unlabelled gauge as 0)')
  t.deepEqual(await scrape(plain.registry, 'edge_mesh_gossip_frames_total'), {}, 'no mesh yet: no labelled series')
  stats = meshStats(1)
  t.deepEqual(await scrape(plain.registry, 'edge_mesh_gossip_frames_total'), { '{"direction":"in"}': 10, '{"direction":"out"}': 20 })
  // The counts double: each counter is raised by the growth, to the new counts.
  stats = meshStats(2)
  t.deepEqual(await scrape(plain.registry, 'edge_mesh_gossip_frames_total'), { '{"direction":"in"}': 20, '{"direction":"out"}': 40 })
  t.deepEqual(await scrape(plain.registry, 'edge_mesh_gossip_bytes_total'), { '{"direction":"in"}': 2000, '{"direction":"out"}': 4000 })
  t.deepEqual(await scrape(plain.registry, 'edge_mesh_gossip_invalid_frames_total'), { '{}': 2 })
  t.deepEqual(await scrape(plain.registry, 'edge_mesh_announcements_total'), { '{"direction":"in"}': 8 }, 'nothing published: no out series')
  t.deepEqual(await scrape(plain.registry, 'edge_mesh_sync_rounds_total'), { '{}': 10 })
  t.deepEqual(await scrape(plain.registry, 'edge_mesh_sync_failures_total'), { '{}': 2 })
  t.deepEqual(await scrape(plain.registry, 'edge_mesh_sync_bytes_total'), { '{"direction":"in"}': 600, '{"direction":"out"}': 800 })
  t.deepEqual(await scrape(plain.registry, 'edge_mesh_peers'), { '{}': 3 })
  t.deepEqual(await scrape(plain.registry, 'edge_mesh_banned_peers'), { '{}': 1 })
  t.deepEqual(await scrape(plain.registry, 'edge_mesh_last_sync_timestamp_seconds'), { '{}': 1_700_000_000 })
  t.deepEqual(await scrape(plain.registry, 'edge_mesh_gossip_unauthorized_frames_total'), { '{}': 4 })
  t.deepEqual(await scrape(plain.registry, 'edge_mesh_sync_invalid_messages_total'), { '{}': 6 })

  const text = await plain.render()
  t.true(text.includes('edge_mesh_gossip_frames_total{direction="in"} 20\n'), text)
  t.true(text.includes('# TYPE process_cpu_user_seconds_total counter'), 'the default process metrics are in the registry')
  t.regex(plain.contentType, /^text\/plain/)
})

test('the HTTP error counter follows the error replies by code', async t => {
  const { registry } = createServiceRegistry()
  let errors: Record<string, number> | undefined
  registerHttpErrorMetrics(registry, () => errors)
  t.deepEqual(await scrape(registry, 'edge_mesh_http_errors_total'), {})
  errors = { EM_ERR_NOT_FOUND: 2 }
  t.deepEqual(await scrape(registry, 'edge_mesh_http_errors_total'), { '{"code":"EM_ERR_NOT_FOUND"}': 2 })
  errors = { EM_ERR_NOT_FOUND: 2, EM_ERR_OVERLOADED: 1 }
  t.deepEqual(await scrape(registry, 'edge_mesh_http_errors_total'), { '{"code":"EM_ERR_NOT_FOUND"}': 2, '{"code":"EM_ERR_OVERLOADED"}': 1 })
})
