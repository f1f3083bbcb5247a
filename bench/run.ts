/**
 * `npm run bench`: runs every benchmark in turn (each prints its JSON lines on stdout, progress on
 * stderr, and writes bench/results/<name>.json), then writes bench/RESULTS.md from the results.
 * Arguments after `--` go to every benchmark.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const BENCHES = ['state.ts', 'mesh.ts', 'gateway.ts', 'analytics.ts']

async function run (file: string, args: string[]): Promise<void> {
  const path = fileURLToPath(new URL(file, import.meta.url))
  await new Promise<void>((resolve, reject) => {
    const p = spawn(process.execPath, [path, ...args], { stdio: 'inherit' })
    p.on('error', reject)
    p.on('exit', code => { code === 0 ? resolve() : reject(new Error(`${file} exited with ${code}`)) })
  })
}

for (const b of BENCHES) {
  process.stderr.write(`[bench] ${b}\n`)
  await run(b, process.argv.slice(2))
}
await run('results-md.ts', [])
