/**
 * The load generator of bench:gateway's read scenario, in its own process so that it can run on
 * a core of its own (bench/gateway.ts starts it under `taskset -c 1` and pins the servers to core
 * 0 on a 2-core machine): GET /v1/sensors/:id over the given sensors at a fixed offered rate, with
 * autocannon, for a warm-up and then the measured run. Prints one JSON line on stdout:
 * `{ ok, non2xx, errors, seconds, p50, p99, max }` (per-request times in ms, from autocannon's
 * response events).
 *
 *   node bench/read-load.ts '{"url":"http://127.0.0.1:8080","seconds":10,"rate":10000,"connections":20,"region":"bench","sensors":10000}'
 */
import { performance } from 'node:perf_hooks'
import autocannon from 'autocannon'

interface Opts { url: string, seconds: number, rate: number, connections: number, region: string, sensors: number, warmupSeconds?: number }

const opts = JSON.parse(process.argv[2] ?? '{}') as Opts
const paths = Array.from({ length: opts.sensors }, (_, i) => `/v1/sensors/${encodeURIComponent(`line-${i % 50}/sensor-${i}`)}?region=${opts.region}`)

async function run (seconds: number): Promise<{ ok: number, non2xx: number, errors: number, seconds: number, lat: Float64Array }> {
  const lat: number[] = []
  let ok = 0
  let non2xx = 0
  let i = 0
  const t0 = performance.now()
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const inst = autocannon({
      url: opts.url,
      connections: opts.connections,
      overallRate: opts.rate,
      duration: seconds,
      requests: [{ method: 'GET', setupRequest: (req: autocannon.Request) => ({ ...req, path: paths[i++ % paths.length] }) }]
    } as autocannon.Options, (err, res) => { if (err !== null && err !== undefined) reject(err); else resolve(res) })
    inst.on('response', (_c: unknown, status: number, _b: number, ms: number) => {
      if (status >= 200 && status < 300) { ok++; lat.push(ms) } else non2xx++
    })
  })
  return { ok, non2xx, errors: result.errors, seconds: (performance.now() - t0) / 1000, lat: Float64Array.from(lat).sort() }
}

await run(opts.warmupSeconds ?? 2)
const r = await run(opts.seconds)
const at = (q: number): number => r.lat.length === 0 ? NaN : Math.round(r.lat[Math.min(r.lat.length - 1, Math.floor(q * r.lat.length))] * 1000) / 1000
process.stdout.write(JSON.stringify({ ok: r.ok, non2xx: r.non2xx, errors: r.errors, seconds: r.seconds, p50: at(0.5), p99: at(0.99), max: at(1) }) + '\n')
