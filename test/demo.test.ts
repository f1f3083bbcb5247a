/**
 * `edge-mesh demo` (what `npm start` runs) as a real child process: real gateway and analytics
 * processes, real LevelDB in a temporary dir. It converges and stops by itself with --duration,
 * and Ctrl-C (SIGINT to the whole process group) while processes are still starting stops it
 * cleanly, as asked, not as a failure. Either way no process is left and the temp dir is removed.
 */
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { access } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import test from 'ava'
import { EDGE_MESH_SCRIPT } from './helpers/child-peer.ts'

interface Run { code: number | null, signal: string | null, stdout: string, stderr: string, dataDir: string | undefined, groupGone: boolean }

/**
 * Runs the demo in its own process group (as a terminal runs a command), calling `onLine` with
 * `kill` (to the group) and the demo's pid for each stdout line. Resolves once the demo has exited, with whether its process group
 * (the demo and every process it started) is empty by then. Bounded: SIGKILL to the group after 90 s.
 */
async function runDemo (args: string[], onLine: (line: string, kill: (signal: NodeJS.Signals) => void, pid: number) => void = () => {}): Promise<Run> {
  const child = spawn(process.execPath, [EDGE_MESH_SCRIPT, 'demo', ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  const pid = child.pid as number
  const kill = (signal: NodeJS.Signals): void => { try { process.kill(-pid, signal) } catch {} }
  const guard = setTimeout(() => { kill('SIGKILL') }, 90_000)
  let stdout = ''
  let stderr = ''
  let dataDir: string | undefined
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  createInterface({ input: child.stdout }).on('line', line => {
    stdout += line + '\n'
    const m = /^data: (.+) \(temporary\)$/.exec(line)
    if (m !== null) dataDir = m[1]
    onLine(line, kill, pid)
  })
  const [code, signal] = await new Promise<[number | null, string | null]>(resolve => { child.once('close', (c, s) => { resolve([c, s]) }) })
  clearTimeout(guard)
  let groupGone = false
  // The demo waits for its processes before it exits; give the kernel a moment to reap them.
  for (let i = 0; i < 50 && !groupGone; i++) {
    try { process.kill(-pid, 0) } catch { groupGone = true }
    if (!groupGone) await new Promise(resolve => setTimeout(resolve, 100))
  }
  if (!groupGone) kill('SIGKILL')
  return { code, signal, stdout, stderr, dataDir, groupGone }
}

async function exists (path: string): Promise<boolean> {
  return await access(path).then(() => true, () => false)
}

test('the demo starts a region, its views converge, and --duration stops it: every process gone, temp data removed', async t => {
  const run = await runDemo(['--regions', '1', '--sensors', '4', '--rate', '20', '--duration', '12'])
  t.is(run.code, 0, run.stderr)
  t.is(run.stderr, '')
  t.regex(run.stdout, /dashboard: {2}http:\/\/127\.0\.0\.1:\d+\//)
  t.regex(run.stdout, /readings\/s acked .*plant-1 age [\d.]+s converged/, 'a status line shows plant-1 converged')
  t.regex(run.stdout, /stopped 3 processes, removed the temporary data/)
  t.not(run.dataDir, undefined)
  t.false(await exists(run.dataDir as string), 'the temporary data dir is removed')
  t.true(run.groupGone, 'no process of the demo is left')
})

test('Ctrl-C while the gateways are still starting stops the demo cleanly, not as a failure', async t => {
  // Once the demo has spawned its first gateway (a child process, which takes a second or more to
  // be ready), SIGINT to the process group, as Ctrl-C in a terminal sends: the starting gateway
  // exits on it, and the demo must take that as the stop it was asked for.
  const run = await runDemo([], (line, kill, pid) => {
    if (!line.startsWith('data: ')) return
    const poll = setInterval(() => {
      let children = ''
      try { children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim() } catch { clearInterval(poll); return }
      if (children !== '') { clearInterval(poll); kill('SIGINT') }
    }, 10)
  })
  t.is(run.code, 0, run.stderr)
  t.is(run.stderr, '')
  t.regex(run.stdout, /stopping: sensors, then every process/)
  t.regex(run.stdout, /stopped during start-up/, 'the signal reached a gateway while it started')
  t.notRegex(run.stdout, /dashboard:/, 'the demo did not get as far as running')
  t.not(run.dataDir, undefined)
  t.false(await exists(run.dataDir as string), 'the temporary data dir is removed')
  t.true(run.groupGone, 'no process of the demo is left')
})
