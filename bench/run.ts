/**
 * `npm run bench`: runs every benchmark in turn (each prints its JSON lines on stdout, progress on
 * stderr, and writes bench/results/<name>.json), then writes bench/RESULTS.md from the results.
 * Arguments after `--` go to every benchmark.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const BENCHES = ['state.ts', 'compaction.ts', 'mesh.ts', 'broker.ts', 'gateway.ts', 'analytics.ts']

async function run (file: string, args: string[]): Promise<void> {
  const path = fileURLToPath(new URL(file, import.meta.url))
  await new Promise<void>((resolve, reject) => {
    const p = spawn(process.execPath, [path, ...args], { stdio: 'inherit' })
    p.on('error', reject)
    p.on('exit', code => { code === 0 ? resolve() : reject(new Error(`${file} exited with ${code}`)) })
  })
}

/**
 * Defaults of the whole-suite run, so that it fits in 15 minutes: the gateway's memory soak runs 3
 * minutes (its own default, for the 10-minute figure, is 10: `npm run bench:gateway`). Arguments
 * given after `--` come later and win.
 */
const SUITE_DEFAULTS: Record<string, string[]> = { 'gateway.ts': ['--minutes', '3'] }

const started = Date.now()
for (const b of BENCHES) {
  process.stderr.write(`[bench] ${b} (${Math.round((Date.now() - started) / 1000)} s in)\n`)
  await run(b, [...(SUITE_DEFAULTS[b] ?? []), ...process.argv.slice(2)])
}
await run('results-md.ts', [])
