/**
 * The analytics dashboard (packages/analytics/public/) in a real browser: Debian's Chromium driven
 * by playwright-core, against real processes over 127.0.0.1:
 *
 *   gateway (edge-mesh gateway, test/helpers/gateway-process.ts) ── mesh ──▶ analytics peer
 *   (edge-mesh analytics, test/helpers/analytics-process.ts) ── HTTP + SSE ──▶ the page
 *
 * One test walks through what an operator sees: the region's freshness tile, a chart per sensor
 * filled from history and then appended from the live stream without a reload, a new sensor
 * charted as soon as it reports, an anomaly listed live, the peers panel, and the page riding
 * out the analytics peer restarting (the stream drops, the status says so, the page reconnects
 * by itself and fills in what it missed). Any page error, console error or failed request fails
 * it (except the refused connections while the peer is deliberately down). A screenshot is
 * written to test/artifacts/analytics-dashboard.png.
 *
 * Chromium is required: without /usr/bin/chromium the test fails and says so (CI installs it).
 * Every wait is a bounded poll of an observable condition (a DOM attribute, an HTTP reply); no
 * duration is asserted.
 */
import { access, constants, mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import test, { type ExecutionContext } from 'ava'
import { chromium, type Browser, type Page } from 'playwright-core'
import { AnalyticsProcess, type AnalyticsProcessOptions } from './helpers/analytics-process.ts'
import { GatewayProcess } from './helpers/gateway-process.ts'
import { until as untilWithin } from './helpers/until.ts'

const CHROMIUM = '/usr/bin/chromium'
const SCREENSHOT = fileURLToPath(new URL('./artifacts/analytics-dashboard.png', import.meta.url))
const REGION = 'plant-1'
/** A second region held by the same gateway. */
const OTHER_REGION = 'plant-2'
/** Bound of every wait on a condition (replication, the page, a process). */
const WAIT_MS = 60_000
/**
 * The page's freshness threshold (its `staleAfterMs` parameter): a region whose newest reading is
 * older is stale. Wide enough for a busy machine to show a reading well within it.
 */
const STALE_AFTER_MS = 20_000
/** Anomaly detection needs this many samples of a sensor first (the store's default minSamples). */
const BASELINE_SAMPLES = 20

// ------------------------------------------------------------------ waits

const until = async <T>(read: () => Promise<T> | T, ok: (value: T) => boolean, what: string, withinMs: number = WAIT_MS): Promise<T> => await untilWithin(read, ok, what, withinMs)

/** Waits for `selector` in the page; on a timeout, says what the page showed instead. */
async function waitFor (page: Page, selector: string, what: string): Promise<void> {
  try {
    await page.waitForSelector(selector, { timeout: WAIT_MS, state: 'attached' })
  } catch {
    const charts = await page.$$eval('.chart', els => els.map(e => `${e.getAttribute('data-sensor')}: ${e.getAttribute('data-points')} points, last ${e.getAttribute('data-last-value')}`)).catch(() => [])
    const status = await page.getAttribute('#status', 'data-state').catch(() => null)
    throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what} (${selector}); status ${String(status)}; charts: ${charts.join('; ') || 'none'}`)
  }
}

/** A chart's data attributes. */
async function chartOf (page: Page, sensor: string): Promise<{ points: number, lastValue: string | null, lastT: string | null } | null> {
  return await page.$$eval('.chart', (els, s) => {
    const el = els.find(e => e.getAttribute('data-sensor') === s)
    if (el === undefined) return null
    return { points: Number(el.getAttribute('data-points')), lastValue: el.getAttribute('data-last-value'), lastT: el.getAttribute('data-last-t') }
  }, sensor)
}

/**
 * Unchecks a box as a user would. The page updates live (tiles, ages, panels), so a layout change
 * can land between Playwright's hit-target check and its click, which then misses the box and
 * Playwright reports "did not change its state". A user clicks again; so does this, at most 3 times.
 */
async function uncheck (page: Page, selector: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await page.uncheck(selector)
      return
    } catch (err) {
      if (attempt >= 3 || !String(err).includes('did not change its state')) throw err
    }
  }
}

const chartSelector = (sensor: string, attrs: string = '', region: string = REGION): string => `.chart[data-region="${region}"][data-sensor="${sensor}"]${attrs}`

async function tempDir (t: ExecutionContext, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

async function launchChromium (t: ExecutionContext): Promise<Browser> {
  try {
    await access(CHROMIUM, constants.X_OK)
  } catch {
    throw new Error(`Chromium is required for the dashboard test and was not found at ${CHROMIUM}: install Debian's chromium package (apt-get install chromium; .ci/run does)`)
  }
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
  t.teardown(async () => { await browser.close() })
  return browser
}

// ------------------------------------------------------------------ the test

interface HistoryReply {
  points: Array<{ t: string, at: number, value: unknown, writer: string }>
}

test('the dashboard shows a reading ingested at a gateway on its chart live, lists anomalies and peers, and reconnects after the analytics peer restarts', async t => {
  t.timeout(180_000)
  const browser = await launchChromium(t)
  const [gwDir, anDir] = await Promise.all([tempDir(t, 'em-dash-gw-'), tempDir(t, 'em-dash-an-')])
  const gw = await GatewayProcess.start(t, { name: 'A', regions: [REGION, OTHER_REGION], data: gwDir })
  const peerOptions = (http: string): AnalyticsProcessOptions => ({ name: 'analytics', data: anDir, bootstrap: [gw.addr], http, logLevel: 'warn' })
  let analytics = await AnalyticsProcess.start(t, peerOptions('127.0.0.1:0'))

  const post = async (readings: Array<{ sensor: string, value: unknown, unit?: string }>, region: string = REGION): Promise<void> => {
    const r = await gw.post(`/v1/readings?region=${region}`, readings)
    if (r.status !== 200) throw new Error(`POST /v1/readings: HTTP ${r.status} ${r.text}`)
  }
  const historyOf = async (sensor: string, region: string = REGION): Promise<HistoryReply['points']> => {
    const r = await analytics.get<HistoryReply>(`/v1/history?region=${region}&sensor=${encodeURIComponent(sensor)}`)
    if (r.status !== 200) throw new Error(`GET /v1/history: HTTP ${r.status} ${r.text}`)
    return r.body.points
  }

  // First readings, recorded by the analytics peer before the page opens: the charts start from history.
  await post([{ sensor: 'line-1/temp', value: 20, unit: 'C' }])
  await post([{ sensor: 'hall/humidity', value: 41, unit: '%' }], OTHER_REGION)
  await until(async () => await historyOf('line-1/temp'), p => p.length === 1, 'the analytics peer to record the first reading')
  await until(async () => await historyOf('hall/humidity', OTHER_REGION), p => p.length === 1, `the analytics peer to record the first reading of ${OTHER_REGION}`)

  // ---------------------------------------------------------------- the page
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  /**
   * Page errors, console errors, failed requests and error replies. While the peer is down on
   * purpose (`outage`), what a stopped server causes is expected: refused or cut connections, and
   * 503 from a server that is closing; nothing else is.
   */
  const problems: string[] = []
  let outage = false
  const OUTAGE_NOISE = /ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|ERR_CONNECTION_RESET|ERR_CONNECTION_CLOSED|ERR_INCOMPLETE_CHUNKED_ENCODING|ERR_ABORTED|status of 503|status 503/
  page.on('pageerror', err => { problems.push(`page error: ${err.message}`) })
  page.on('console', msg => {
    if (msg.type() !== 'error') return
    if (outage && OUTAGE_NOISE.test(msg.text())) return
    problems.push(`console error: ${msg.text()}`)
  })
  page.on('requestfailed', req => {
    const failure = req.failure()?.errorText ?? ''
    if (outage && OUTAGE_NOISE.test(failure)) return
    // The stream is cut when the page closes; nothing else may fail.
    if (req.url().endsWith('/v1/stream') && failure === 'net::ERR_ABORTED') return
    problems.push(`request failed: ${req.method()} ${req.url()}: ${failure}`)
  })
  page.on('response', res => {
    if (res.status() < 400 || (outage && res.status() === 503)) return
    problems.push(`HTTP ${res.status()} for ${res.request().method()} ${res.url()}`)
  })
  let loads = 0
  page.on('load', () => { loads++ })

  await page.goto(`${analytics.url}/?staleAfterMs=${STALE_AFTER_MS}`)
  await waitFor(page, '#status[data-connected="true"]', 'the stream to connect')
  await waitFor(page, `.tile[data-region="${REGION}"]`, 'the region tile')
  await waitFor(page, `.tile[data-region="${OTHER_REGION}"]`, 'the other region\'s tile')
  t.is(await page.inputValue('#region-select'), REGION, 'the first region by name is charted')
  await waitFor(page, chartSelector('line-1/temp', '[data-points="1"][data-last-value="20"]'), 'the first reading on the chart, from history')
  t.is(await page.getAttribute(`.tile[data-region="${REGION}"]`, 'data-sensors'), '1', 'the tile counts the region\'s sensors')
  t.is(await page.textContent(chartSelector('line-1/temp', ' .unit')), 'C', 'the unit is shown in the legend')
  t.is(await page.$$eval('.chart', els => els.length), 1, 'one chart: one sensor has reported')

  // ---------------------------------------------------------------- live: a reading ingested now
  await post([{ sensor: 'line-1/temp', value: 23.5, unit: 'C' }])
  await waitFor(page, chartSelector('line-1/temp', '[data-points="2"][data-last-value="23.5"]'), 'the new reading on the chart, from the stream')
  t.is(await page.getAttribute(`.tile[data-region="${REGION}"]`, 'data-freshness'), 'fresh', 'a region that just reported is fresh')
  const recorded = await historyOf('line-1/temp')
  t.is((await chartOf(page, 'line-1/temp'))?.lastT, recorded[recorded.length - 1]?.t, 'the chart\'s newest point is the reading the peer recorded (same HLC t)')

  // A sensor that was never seen is charted as soon as it reports (fewer than the maximum are charted).
  await post([{ sensor: 'line-2/rpm', value: 1480 }])
  await waitFor(page, chartSelector('line-2/rpm', '[data-points="1"][data-last-value="1480"]'), 'a chart for a sensor seen first on the stream')
  t.is(await page.getAttribute(`.sensor-choice[data-sensor="line-2/rpm"] input`, 'value'), 'line-2/rpm', 'the new sensor is in the picker')

  // ---------------------------------------------------------------- an anomaly, listed live
  // A baseline of readings one by one (each must be seen by the peer before the next is written:
  // a reading superseded before the peer applied it is never recorded), then a spike.
  for (let i = 0; i < BASELINE_SAMPLES; i++) {
    const value = 50 + (i % 2 === 0 ? 0.5 : -0.5) + (i % 5) * 0.1
    await post([{ sensor: 'line-3/pressure', value }])
    await waitFor(page, chartSelector('line-3/pressure', `[data-points="${i + 1}"]`), `baseline reading ${i + 1} on the chart`)
  }
  await post([{ sensor: 'line-3/pressure', value: 500 }])
  await waitFor(page, `#anomalies li[data-region="${REGION}"][data-sensor="line-3/pressure"]`, 'the spike in the anomaly list')
  t.true(Number(await page.getAttribute('#anomalies li[data-sensor="line-3/pressure"]', 'data-z')) > 3.5, 'the listed anomaly carries its z score')
  await waitFor(page, chartSelector('line-3/pressure', `[data-points="${BASELINE_SAMPLES + 1}"][data-last-value="500"]`), 'the spike on the chart')

  // ---------------------------------------------------------------- peers
  await waitFor(page, `#peers li[data-peer="${gw.peerId}"]`, 'the gateway in the peers panel')
  t.is(await page.textContent('#peer-id'), analytics.peerId, 'the header names the analytics peer')
  await waitFor(page, `#announced dt[data-region="${REGION}"]`, 'the region announced by the gateway')

  // ---------------------------------------------------------------- the stream drops and comes back
  t.is(loads, 1, 'no reload so far')
  await page.evaluate(() => { (globalThis as Record<string, unknown>).dashboardMarker = 'same document' })
  const port = new URL(analytics.url).port
  outage = true
  const exit = await analytics.stop()
  t.is(exit.code, 0, `the analytics peer stopped cleanly${analytics.diagnostics()}`)
  await waitFor(page, '#status[data-connected="false"]', 'the page to show the stream lost')
  // Written while the peer is down: the peer catches up from the mesh, the page from its history.
  await post([{ sensor: 'line-1/temp', value: 19.25, unit: 'C' }])
  analytics = await AnalyticsProcess.start(t, peerOptions(`127.0.0.1:${port}`))
  await waitFor(page, '#status[data-connected="true"]', 'the page to reconnect by itself')
  outage = false
  await waitFor(page, chartSelector('line-1/temp', '[data-points="3"][data-last-value="19.25"]'), 'the reading written during the outage, filled in on reconnection')
  await post([{ sensor: 'line-1/temp', value: 21, unit: 'C' }])
  await waitFor(page, chartSelector('line-1/temp', '[data-points="4"][data-last-value="21"]'), 'a live reading after the reconnection')
  t.is(await page.evaluate(() => (globalThis as Record<string, unknown>).dashboardMarker), 'same document', 'the page was never reloaded')
  t.is(loads, 1, 'one load event')

  // Nothing was written to the other region since the start: its tile turns stale as its age passes the threshold.
  await waitFor(page, `.tile[data-region="${OTHER_REGION}"][data-freshness="stale"]`, `${OTHER_REGION}'s tile to turn stale`)
  t.true(Number(await page.getAttribute(`.tile[data-region="${OTHER_REGION}"]`, 'data-age-ms')) >= STALE_AFTER_MS, 'a stale tile shows an age over the threshold')
  t.is(await page.getAttribute(`.tile[data-region="${REGION}"]`, 'data-freshness'), 'fresh', `${REGION} just reported: fresh`)

  await mkdir(dirname(SCREENSHOT), { recursive: true })
  await page.screenshot({ path: SCREENSHOT, fullPage: true })

  // ---------------------------------------------------------------- another region, chosen in the picker
  await page.selectOption('#region-select', OTHER_REGION)
  await waitFor(page, chartSelector('hall/humidity', '[data-points="1"][data-last-value="41"]', OTHER_REGION), `the chart of ${OTHER_REGION}'s sensor, from history`)
  t.is(await page.$$eval('.chart', els => els.length), 1, `only ${OTHER_REGION}'s sensor is charted`)
  await post([{ sensor: 'hall/humidity', value: 42.5, unit: '%' }], OTHER_REGION)
  await waitFor(page, chartSelector('hall/humidity', '[data-points="2"][data-last-value="42.5"]', OTHER_REGION), `a live reading of ${OTHER_REGION}`)
  await uncheck(page, '.sensor-choice[data-sensor="hall/humidity"] input')
  await waitFor(page, '#charts:not(:has(.chart))', 'the chart to go when its sensor is unchecked')
  t.is(await page.evaluate(() => (globalThis as Record<string, unknown>).dashboardMarker), 'same document', 'still the same document')
  await page.close()
  t.deepEqual(problems, [], 'no page error, console error or failed request')
})
