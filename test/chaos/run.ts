/**
 * The chaos runner: runs seeds one after the other (test/chaos/seed-run.ts), progress on stderr,
 * and prints ONE JSON summary line on stdout, also written with every seed's result to
 * bench/results/chaos.json. Exit status 1 if a seed broke an invariant (its seed, fault list and
 * violations are printed on stderr), 2 for a usage error.
 *
 *   npm run chaos -- --seeds 200 --minutes 60     # the long run (long profile)
 *   npm run chaos -- --seed 17                    # replay one seed
 *
 * Options:
 *   --seeds N       seeds to run (default 20), starting at --first (default 1)
 *   --first S       the first seed
 *   --seed S        run only seed S
 *   --minutes M     bound on the whole run: no seed is started after M minutes (default 60)
 *   --profile P     long (default: 6-10 fault steps, 24 sensors per region) or short (the CI one)
 *
 * Summary keys: seeds run, faults (steps), acked (distinct acknowledged readings at gateways
 * within the drift bound), lost, divergentReplicas (summed over seeds), maxConvergeMs (heal →
 * identical views, worst seed; p50ConvergeMs the median seed), fenced (readings acknowledged by the gateway beyond the drift
 * bound and refused by the mesh), inDoubt (readings of requests without a reply), refusedFrames,
 * restarts, reads, notConverged, failedSeeds, violations, wallMs.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { LONG_PROFILE, SHORT_PROFILE } from './plan.ts'
import { describeFailure, runSeed, type SeedResult } from './seed-run.ts'

const RESULTS = join(dirname(fileURLToPath(import.meta.url)), '../../bench/results/chaos.json')

function usage (msg: string): never {
  process.stderr.write(`chaos: ${msg}\nUsage: node test/chaos/run.ts [--seeds N] [--first S] [--seed S] [--minutes M] [--profile long|short]\n`)
  process.exit(2)
}

function intFlag (v: string | undefined, name: string, dflt: number, min: number): number {
  if (v === undefined) return dflt
  if (!/^\d{1,9}$/.test(v) || Number(v) < min) usage(`--${name} must be an integer >= ${min}, not ${JSON.stringify(v)}`)
  return Number(v)
}

async function main (): Promise<void> {
  let values
  try {
    values = parseArgs({
      options: {
        seeds: { type: 'string' },
        first: { type: 'string' },
        seed: { type: 'string' },
        minutes: { type: 'string' },
        profile: { type: 'string' }
      },
      strict: true
    }).values
  } catch (err) {
    usage(err instanceof Error ? err.message : String(err))
  }
  const profileName = values.profile ?? 'long'
  if (profileName !== 'long' && profileName !== 'short') usage(`--profile must be long or short, not ${JSON.stringify(profileName)}`)
  const profile = profileName === 'long' ? LONG_PROFILE : SHORT_PROFILE
  const minutes = values.minutes === undefined ? 60 : Number(values.minutes)
  if (!Number.isFinite(minutes) || minutes <= 0) usage(`--minutes must be a positive number, not ${JSON.stringify(values.minutes)}`)
  const seeds: number[] = values.seed !== undefined
    ? [intFlag(values.seed, 'seed', 0, 0)]
    : Array.from({ length: intFlag(values.seeds, 'seeds', 20, 1) }, (_, i) => intFlag(values.first, 'first', 1, 0) + i)

  const t0 = Date.now()
  const deadline = t0 + minutes * 60_000
  const results: SeedResult[] = []
  for (const seed of seeds) {
    if (Date.now() > deadline) {
      process.stderr.write(`chaos: ${minutes} minutes passed, not starting seed ${seed}\n`)
      break
    }
    let r: SeedResult
    try {
      r = await runSeed(seed, { profile, log: line => { if (process.env.EM_CHAOS_VERBOSE === '1') process.stderr.write(line + '\n') } })
    } catch (err) {
      // The cluster could not even start: a failed seed like any other.
      r = {
        seed, profile: profileName, ok: false, faults: 0, acked: 0, fenced: 0, inDoubt: 0, lost: 0, divergentReplicas: 0, convergeMs: null, refusedFrames: 0,
        reads: 0, restarts: 0, violations: [`the seed could not run: ${err instanceof Error ? err.stack ?? err.message : String(err)}`], plan: `seed ${seed}`, details: '', wallMs: 0
      }
    }
    results.push(r)
    process.stderr.write(`chaos: seed ${seed} ${r.ok ? 'ok' : 'FAILED'}: ${r.faults} faults, ${r.acked} acked, ${r.fenced} fenced, ${r.inDoubt} in doubt, ` +
      `${r.restarts} restarts, converged in ${r.convergeMs ?? '-'} ms, ${r.reads} reads, ${(r.wallMs / 1000).toFixed(1)} s ` +
      `[${results.length}/${seeds.length}, ${((Date.now() - t0) / 60_000).toFixed(1)} min]\n`)
    if (!r.ok) process.stderr.write(describeFailure(r) + '\n')
  }
  const converge = results.map(r => r.convergeMs).filter((x): x is number => x !== null).sort((a, b) => a - b)
  const sum = (f: (r: SeedResult) => number): number => results.reduce((s, r) => s + f(r), 0)
  const summary = {
    bench: 'chaos',
    profile: profileName,
    seeds: results.length,
    faults: sum(r => r.faults),
    acked: sum(r => r.acked),
    lost: sum(r => r.lost),
    divergentReplicas: sum(r => r.divergentReplicas),
    maxConvergeMs: converge.length > 0 ? converge[converge.length - 1] : null,
    p50ConvergeMs: converge.length > 0 ? converge[Math.floor((converge.length - 1) / 2)] : null,
    fenced: sum(r => r.fenced),
    inDoubt: sum(r => r.inDoubt),
    refusedFrames: sum(r => r.refusedFrames),
    restarts: sum(r => r.restarts),
    reads: sum(r => r.reads),
    notConverged: results.filter(r => r.convergeMs === null).length,
    failedSeeds: results.filter(r => !r.ok).map(r => r.seed),
    violations: sum(r => r.violations.length),
    wallMs: Date.now() - t0
  }
  process.stdout.write(JSON.stringify(summary) + '\n')
  await mkdir(dirname(RESULTS), { recursive: true })
  await writeFile(RESULTS, JSON.stringify({ summary, results }, null, 2) + '\n')
  process.exitCode = summary.failedSeeds.length > 0 ? 1 : 0
}

// A signal ends the run through process.exit, whose 'exit' handler (test/helpers/gateway-process.ts)
// SIGKILLs the gateways still running.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`chaos: ${signal}, stopping the gateways\n`)
    process.exit(130)
  })
}
await main()
