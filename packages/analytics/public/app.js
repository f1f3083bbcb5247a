/**
 * The analytics dashboard: a plain ES module, no build step, no framework. uPlot is loaded before
 * it as a classic script (the global `uPlot`).
 *
 * What it reads from the analytics peer that serves it (paths relative to the page):
 *   GET v1/regions          { at, regions: [{ region, following, sensors, lastAt, newestAgeMs, observed,
 *                                             lagP50Ms, lagP99Ms, … }] }    (`at`: the server's clock)
 *   GET v1/sensors?region=  { region, sensors: [{ sensor, lastAt, … }] }   the sensor picker
 *   GET v1/history?region=&sensor=&from=&limit=&order=desc
 *                           { points: [{ t, at, value, unit?, writer }] }   a chart's backlog
 *   GET v1/anomalies?from=&limit=&order=desc
 *                           { anomalies: [{ region, sensor, at, t, writer, value, mean, std, z }] }
 *   GET v1/peers            { peerId, peers: [...], announced: { <region>: [peer ids] } }
 *   GET v1/stream           Server-Sent Events: `reading` { region, sensor, value, unit?, t, at, writer },
 *                           `anomaly` (an anomaly as above), `regions` ({ at, regions } as above, every second)
 *
 * Live updates come from the stream only; nothing reloads. When the stream drops, the browser's
 * EventSource reconnects by itself; a stream that the browser gave up on (readyState CLOSED) or
 * that stays silent longer than a few summary periods is closed and reopened with a backoff. On
 * every (re)connection the page fetches the summaries, anomalies, peers and the charted sensors'
 * history again, so what the stream missed while it was down is filled in. A reading can still
 * slip between the two (published just before the stream opened, written to history just after it
 * was read): when the summaries keep showing the charted region newer than any reading the page
 * saw, the charts' history is read once more.
 *
 * Testable DOM (the attributes are kept up to date with the rendering):
 *   #status[data-connected="true|false"][data-state="connecting|live|reconnecting"]
 *   .tile[data-region][data-freshness="fresh|stale|empty"][data-following][data-sensors][data-age-ms][data-lag-p99-ms]
 *   .chart[data-region][data-sensor][data-points][data-last-value][data-last-t]   one per charted sensor
 *   #anomalies > li[data-region][data-sensor][data-t][data-z]
 *   #peer-count[data-count], #peers > li[data-peer], #announced dt[data-region]
 *
 * URL parameters (all optional): `region` (the charted region), `sensors` (comma-separated, the
 * charted sensors), `staleAfterMs` (age from which a region tile is stale; default 10 000),
 * `windowMs` (chart backlog; default 15 minutes), `maxCharts` (default 6, at most 12).
 */

const params = new URLSearchParams(location.search)

/** @param {string} name @param {number} fallback @param {number} min @param {number} max */
function intParam (name, fallback, min, max) {
  const raw = params.get(name)
  if (raw === null || !/^\d+$/.test(raw)) return fallback
  return Math.min(max, Math.max(min, Number(raw)))
}

const MAX_CHARTS = intParam('maxCharts', 6, 1, 12)
const STALE_AFTER_MS = intParam('staleAfterMs', 10_000, 1, 86_400_000)
const WINDOW_MS = intParam('windowMs', 15 * 60_000, 1000, 7 * 86_400_000)
/** Points kept per chart (the oldest are dropped). */
const MAX_POINTS = 2000
/** History points fetched per chart on (re)connection. */
const HISTORY_LIMIT = 1000
/** Anomalies listed (the newest). */
const MAX_ANOMALIES = 50
/** Anomalies fetched at (re)connection: those of the last hour. */
const ANOMALY_WINDOW_MS = 3_600_000
/** Peers are polled; the stream does not carry them. */
const PEERS_EVERY_MS = 5000
/**
 * The stream sends a summary every second or so: silence for this long, or for four of the
 * periods seen between summaries if that is longer, means a dead connection.
 */
const SILENCE_MS = 6000
/** A chart holding a single instant shows this much time around it (s). */
const SINGLE_POINT_SPAN_S = 30
/** Reconnection backoff after the browser gave up on the stream: doubles from the first up to the last. */
const BACKOFF_FIRST_MS = 500
const BACKOFF_MAX_MS = 10_000
/** A region newer in the summaries than anything seen for this long means missed readings. */
const GAP_MS = 1500
/** Bound on every fetch. */
const FETCH_TIMEOUT_MS = 10_000
const CHART_HEIGHT = 170
/** Sensors listed in the picker besides the charted ones. */
const PICKER_MAX = 100
const COLOURS = ['#4e9af1', '#f18f4e', '#5cc98a', '#d36ad6', '#e5c452', '#53c7c9', '#f06b7a', '#9c8cf2', '#9bbf4a', '#c98a5c', '#6a8fd6', '#d69c6a']

// ------------------------------------------------------------------ small helpers

/** @param {string} id */
const $ = id => /** @type {HTMLElement} */ (document.getElementById(id))

/**
 * @param {string} tag
 * @param {Record<string, string>} [attrs]
 * @param {Array<Node | string>} [children]
 */
function h (tag, attrs = {}, children = []) {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') el.className = v
    else el.setAttribute(k, v)
  }
  for (const c of children) el.append(c)
  return el
}

/** The value of a reading as a number, or null when it is not numeric. */
function numeric (value) {
  if (typeof value === 'number' && Number.isFinite(value)) return value
  if (value !== null && typeof value === 'object' && typeof value.value === 'number' && Number.isFinite(value.value)) return value.value
  return null
}

/** A reading value as text (numbers as JavaScript prints them, anything else as JSON). */
function valueText (value) {
  if (typeof value === 'number') return String(value)
  if (typeof value === 'string') return value
  return JSON.stringify(value) ?? String(value)
}

/** @param {number | null | undefined} ms */
function formatAge (ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–'
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.floor((ms % 60_000) / 1000)} s`
  return `${(ms / 3_600_000).toFixed(1)} h`
}

/** @param {number | null | undefined} ms */
function formatMs (ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–'
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`
}

/** @param {number} at */
function formatClock (at) {
  return new Date(at).toLocaleTimeString([], { hour12: false })
}

/** GET a JSON document; rejects on a network error, a timeout or a status other than 200. */
async function getJson (path) {
  const res = await fetch(path, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) })
  if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status}`)
  return await res.json()
}

/** Failures of background fetches are shown in the status line, never thrown into the console. */
function noteFailure (what, err) {
  const msg = err instanceof Error ? err.message : String(err)
  const el = $('status')
  el.title = `${what}: ${msg}`
}

// ------------------------------------------------------------------ the server's clock

/**
 * Ages are measured on the server's clock: every summary carries the server's time (`at`). The
 * offset to the local clock is kept (the latest estimate), and ages between summaries are computed
 * with it, so a browser whose clock is off still shows true ages.
 */
let serverOffsetMs = 0
const serverNow = () => Date.now() + serverOffsetMs

/** Takes in a summary document `{ at, regions }` (from GET v1/regions or the stream). */
function takeSummaries (body) {
  if (body === null || typeof body !== 'object') return
  if (typeof body.at === 'number' && Number.isFinite(body.at)) serverOffsetMs = body.at - Date.now()
  const list = Array.isArray(body.regions) ? body.regions : []
  for (const s of list) upsertRegion(s)
  checkGap()
}

// ------------------------------------------------------------------ regions: freshness tiles

/** region -> { summary, tile } */
const regions = new Map()

function upsertRegion (summary) {
  if (summary === null || typeof summary !== 'object' || typeof summary.region !== 'string') return
  let entry = regions.get(summary.region)
  if (entry === undefined) {
    entry = { summary, tile: makeTile(summary.region) }
    regions.set(summary.region, entry)
    placeTile(entry.tile, summary.region)
    addRegionOption(summary.region)
  } else {
    entry.summary = { ...entry.summary, ...summary }
  }
  renderTile(entry)
  if (summary.region === selection.region && !selection.sensorsLoaded) {
    void loadSensors(summary.region)
    for (const chart of charts.values()) void chart.loadHistory()
  }
}

function makeTile (region) {
  return h('article', { class: 'tile', 'data-region': region, 'data-freshness': 'empty', 'data-following': 'true' }, [
    h('h3', {}, [region, h('span', { class: 'badge muted', hidden: '' }, ['history only'])]),
    h('p', { class: 'age' }, [h('span', { class: 'age-value' }, ['–']), h('span', { class: 'muted' }, [' since newest'])]),
    h('dl', {}, [
      h('dt', {}, ['sensors']), h('dd', { class: 'sensors' }, ['0']),
      h('dt', {}, ['lag p50']), h('dd', { class: 'lag-p50' }, ['–']),
      h('dt', {}, ['lag p99']), h('dd', { class: 'lag-p99' }, ['–'])
    ])
  ])
}

function placeTile (tile, region) {
  const box = $('regions')
  box.querySelector('.empty')?.remove()
  const after = [...box.children].find(c => (c.getAttribute('data-region') ?? '') > region)
  box.insertBefore(tile, after ?? null)
}

function renderTile (entry) {
  const { summary, tile } = entry
  const age = typeof summary.lastAt === 'number' ? Math.max(0, serverNow() - summary.lastAt) : null
  const freshness = age === null ? 'empty' : age < STALE_AFTER_MS ? 'fresh' : 'stale'
  tile.setAttribute('data-freshness', freshness)
  const following = summary.following !== false
  tile.setAttribute('data-following', String(following))
  tile.querySelector('.badge').hidden = following
  tile.setAttribute('data-sensors', String(summary.sensors ?? 0))
  tile.setAttribute('data-age-ms', age === null ? '' : String(Math.round(age)))
  tile.setAttribute('data-lag-p99-ms', typeof summary.lagP99Ms === 'number' ? String(summary.lagP99Ms) : '')
  tile.title = freshness === 'empty' ? 'no reading yet' : `newest reading at ${formatClock(summary.lastAt)} (${freshness})`
  tile.querySelector('.age-value').textContent = formatAge(age)
  tile.querySelector('.sensors').textContent = String(summary.sensors ?? 0)
  tile.querySelector('.lag-p50').textContent = formatMs(summary.lagP50Ms)
  tile.querySelector('.lag-p99').textContent = formatMs(summary.lagP99Ms)
}

/** Tiles to render at the next frame. */
const dirtyTiles = new Set()

/**
 * A reading seen on the stream makes its region fresh before the next summary says so (rendered
 * once per frame, however many readings come).
 */
function touchRegion (reading) {
  const entry = regions.get(reading.region)
  if (entry === undefined) {
    upsertRegion({ region: reading.region, following: true, sensors: 1, lastAt: reading.at })
    return
  }
  if (typeof reading.at === 'number' && (typeof entry.summary.lastAt !== 'number' || reading.at > entry.summary.lastAt)) {
    entry.summary.lastAt = reading.at
    if (dirtyTiles.size === 0) {
      requestAnimationFrame(() => {
        for (const e of dirtyTiles) renderTile(e)
        dirtyTiles.clear()
      })
    }
    dirtyTiles.add(entry)
  }
}

// ------------------------------------------------------------------ the region and sensor picker

const selection = {
  /** @type {string | null} */
  region: params.get('region'),
  /** Sensors charted, in order. */
  sensors: (params.get('sensors') ?? '').split(',').filter(s => s !== '').slice(0, MAX_CHARTS),
  /** Until the user picks, the first sensors seen are charted. */
  userPicked: params.has('sensors'),
  /** Sensors known in the selected region. */
  known: /** @type {Set<string>} */ (new Set()),
  /** GET v1/sensors answered for the selected region (asked once the server lists the region). */
  sensorsLoaded: false,
  /** The newest reading time the page has for the selected region (stream or history), server clock. */
  seenAt: 0,
  /** Since when the summaries show the selected region newer than `seenAt` (0: they do not). */
  gapSince: 0
}

function addRegionOption (region) {
  const select = /** @type {HTMLSelectElement} */ ($('region-select'))
  if ([...select.options].some(o => o.value === region)) return
  const option = h('option', { value: region }, [region])
  const after = [...select.options].find(o => o.value > region)
  select.insertBefore(option, after ?? null)
  if (selection.region === null) selectRegion(region)
  else if (selection.region === region) select.value = region
}

function selectRegion (region) {
  const select = /** @type {HTMLSelectElement} */ ($('region-select'))
  if (selection.region !== region) {
    selection.region = region
    selection.sensors = []
    selection.userPicked = false
  }
  selection.known = new Set()
  selection.sensorsLoaded = false
  selection.seenAt = 0
  selection.gapSince = 0
  select.value = region
  for (const chart of charts.values()) chart.destroy()
  charts.clear()
  renderPicker()
  syncCharts()
  // A region only named in the URL is asked for once the server lists it (else: a 404).
  if (regions.has(region)) void loadSensors(region)
}

/**
 * Learns sensors of the selected region; charts them (in order) while fewer than MAX_CHARTS are
 * charted and the user has not picked.
 * @param {string} region @param {string[]} sensors
 */
function learnSensors (region, sensors) {
  if (region !== selection.region) return
  let learnt = false
  for (const sensor of sensors) {
    if (typeof sensor !== 'string' || selection.known.has(sensor)) continue
    selection.known.add(sensor)
    learnt = true
    if (!selection.userPicked && selection.sensors.length < MAX_CHARTS && !selection.sensors.includes(sensor)) {
      selection.sensors.push(sensor)
    }
  }
  if (!learnt) return
  syncCharts()
  renderPicker()
}

async function loadSensors (region) {
  selection.sensorsLoaded = true
  try {
    const body = await getJson(`v1/sensors?region=${encodeURIComponent(region)}`)
    if (selection.region !== region) return
    const list = Array.isArray(body.sensors) ? body.sensors : []
    learnSensors(region, list.map(s => typeof s === 'string' ? s : s?.sensor).sort())
  } catch (err) {
    if (selection.region === region) selection.sensorsLoaded = false
    noteFailure('sensors', err)
  }
  syncCharts()
}

/** A reading time of the selected region that the page has (from the stream or history). */
function sawReading (region, at) {
  if (region === selection.region && typeof at === 'number' && at > selection.seenAt) selection.seenAt = at
}

/**
 * The summaries say the selected region has a reading newer than any the page has: a reading was
 * missed (see the module doc). Once that has lasted GAP_MS (the peer writes its history in
 * batches), the sensors and the charts' history are read again, and the page counts itself caught
 * up to that time.
 */
function checkGap () {
  const lastAt = selection.region === null ? undefined : regions.get(selection.region)?.summary.lastAt
  if (typeof lastAt !== 'number' || lastAt <= selection.seenAt || stream.source?.readyState !== EventSource.OPEN) {
    selection.gapSince = 0
    return
  }
  const now = Date.now()
  if (selection.gapSince === 0) {
    selection.gapSince = now
    return
  }
  if (now - selection.gapSince < GAP_MS) return
  selection.gapSince = 0
  selection.seenAt = lastAt
  void loadSensors(/** @type {string} */ (selection.region))
  for (const chart of charts.values()) void chart.loadHistory()
}

/**
 * The picker lists the charted sensors, then the others that contain the filter text, at most
 * PICKER_MAX of them (a region may have thousands of sensors).
 */
function renderPicker () {
  const box = $('sensor-picker')
  for (const el of [...box.children]) if (el.tagName !== 'LEGEND') el.remove()
  const filter = /** @type {HTMLInputElement} */ ($('sensor-filter')).value.trim()
  const others = [...selection.known].filter(s => !selection.sensors.includes(s) && s.includes(filter)).sort()
  const names = [...selection.sensors, ...others.slice(0, PICKER_MAX)]
  if (names.length === 0) {
    box.append(h('p', { class: 'empty' }, [selection.known.size === 0 ? 'No sensor seen in this region yet.' : 'No sensor matches the filter.']))
    return
  }
  const full = selection.sensors.length >= MAX_CHARTS
  for (const sensor of names) {
    const input = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', value: sensor, name: 'sensor' }))
    input.checked = selection.sensors.includes(sensor)
    input.disabled = full && !input.checked
    input.addEventListener('change', () => {
      selection.userPicked = true
      if (input.checked && !selection.sensors.includes(sensor) && selection.sensors.length < MAX_CHARTS) selection.sensors.push(sensor)
      if (!input.checked) selection.sensors = selection.sensors.filter(s => s !== sensor)
      syncCharts()
      renderPicker()
    })
    box.append(h('label', { class: 'sensor-choice', 'data-sensor': sensor }, [input, ' ', sensor]))
  }
  if (others.length > PICKER_MAX) box.append(h('p', { class: 'more muted' }, [`${others.length - PICKER_MAX} more: filter to find them`]))
}

// ------------------------------------------------------------------ charts

/** sensor -> SensorChart, for the selected region */
const charts = new Map()
let colourIndex = 0

class SensorChart {
  /** @param {string} region @param {string} sensor */
  constructor (region, sensor) {
    this.region = region
    this.sensor = sensor
    /** Points sorted by (t, writer): { t, writer, x (s), y (number | null), value, unit } */
    this.points = []
    this.keys = new Set()
    this.unit = ''
    this.colour = COLOURS[colourIndex++ % COLOURS.length]
    this.valueEl = h('span', { class: 'value' }, ['–'])
    this.unitEl = h('span', { class: 'unit muted' }, [''])
    this.countEl = h('span', { class: 'count muted' }, ['0 points'])
    this.plotEl = h('div', { class: 'plot' })
    this.el = h('figure', { class: 'chart', 'data-region': region, 'data-sensor': sensor, 'data-points': '0', 'data-last-value': '', 'data-last-t': '' }, [
      h('figcaption', { class: 'legend' }, [
        h('span', { class: 'swatch', style: `background:${this.colour}` }),
        h('span', { class: 'name' }, [sensor]),
        this.valueEl, this.unitEl, this.countEl
      ]),
      this.plotEl
    ])
    $('charts').append(this.el)
    this.plot = new globalThis.uPlot({
      width: this.width(),
      height: CHART_HEIGHT,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true, range: singleInstantRange }
      },
      axes: [
        { stroke: '#9aa4b2', grid: { stroke: '#2a313c' }, ticks: { stroke: '#2a313c' } },
        { stroke: '#9aa4b2', grid: { stroke: '#2a313c' }, ticks: { stroke: '#2a313c' }, size: 56 }
      ],
      series: [{}, { label: sensor, stroke: this.colour, width: 1.5, spanGaps: false, points: { size: 4 } }]
    }, [[], []], this.plotEl)
    this.pending = false
  }

  width () {
    return Math.max(200, Math.floor(this.el.clientWidth - 16))
  }

  resize () {
    this.plot.setSize({ width: this.width(), height: CHART_HEIGHT })
  }

  /** Adds points (history or stream) in any order; a point already held (same t and writer) is skipped. */
  add (points) {
    let changed = false
    for (const p of points) {
      if (typeof p?.t !== 'string' || typeof p.at !== 'number') continue
      const key = `${p.t} ${p.writer ?? ''}`
      if (this.keys.has(key)) continue
      const point = { t: p.t, writer: p.writer ?? '', x: p.at / 1000, y: numeric(p.value), value: p.value, unit: p.unit }
      const last = this.points[this.points.length - 1]
      if (last === undefined || compare(point, last) > 0) {
        this.points.push(point)
      } else {
        let lo = 0
        let hi = this.points.length
        while (lo < hi) {
          const mid = (lo + hi) >> 1
          if (compare(this.points[mid], point) < 0) lo = mid + 1
          else hi = mid
        }
        this.points.splice(lo, 0, point)
      }
      this.keys.add(key)
      sawReading(this.region, p.at)
      changed = true
    }
    if (!changed) return
    while (this.points.length > MAX_POINTS) {
      const old = this.points.shift()
      this.keys.delete(`${old.t} ${old.writer}`)
    }
    this.render()
  }

  render () {
    const last = this.points[this.points.length - 1]
    this.el.setAttribute('data-points', String(this.points.length))
    if (last !== undefined) {
      this.el.setAttribute('data-last-value', valueText(last.value))
      this.el.setAttribute('data-last-t', last.t)
      this.valueEl.textContent = valueText(last.value)
      if (typeof last.unit === 'string') this.unit = last.unit
      this.unitEl.textContent = this.unit
    }
    this.countEl.textContent = `${this.points.length} point${this.points.length === 1 ? '' : 's'}`
    // Redraw at most once per frame however many readings arrive.
    if (this.pending) return
    this.pending = true
    requestAnimationFrame(() => {
      this.pending = false
      if (this.plot === null) return
      this.plot.setData([this.points.map(p => p.x), this.points.map(p => p.y)])
    })
  }

  async loadHistory () {
    // A region the server does not list yet (only named in the URL) would be a 404: asked later.
    if (!regions.has(this.region)) return
    const from = Math.max(0, serverNow() - WINDOW_MS)
    const q = `region=${encodeURIComponent(this.region)}&sensor=${encodeURIComponent(this.sensor)}&from=${Math.floor(from)}&limit=${HISTORY_LIMIT}&order=desc`
    try {
      const body = await getJson(`v1/history?${q}`)
      if (this.plot !== null && Array.isArray(body.points)) this.add(body.points)
    } catch (err) {
      noteFailure(`history of ${this.sensor}`, err)
    }
  }

  destroy () {
    this.plot.destroy()
    this.plot = null
    this.el.remove()
  }
}

/**
 * The x range: uPlot widens a single instant by a whole day (and an empty chart to nothing); a
 * chart holding one instant shows SINGLE_POINT_SPAN_S around it instead.
 */
function singleInstantRange (u, min, max) {
  const xs = u.data[0]
  if (xs.length > 0 && xs[0] === xs[xs.length - 1]) return [xs[0] - SINGLE_POINT_SPAN_S, xs[0] + SINGLE_POINT_SPAN_S]
  if (min === null || max === null) {
    const now = serverNow() / 1000
    return [now - SINGLE_POINT_SPAN_S, now + SINGLE_POINT_SPAN_S]
  }
  return [min, max]
}

/** (t, writer) order: t is fixed-width hex, so string order is time order. */
function compare (a, b) {
  if (a.t !== b.t) return a.t < b.t ? -1 : 1
  return a.writer < b.writer ? -1 : a.writer > b.writer ? 1 : 0
}

/** Makes the charts match the selection, in its order; new charts load their history. */
function syncCharts () {
  if (selection.region === null) return
  for (const [sensor, chart] of charts) {
    if (!selection.sensors.includes(sensor)) {
      chart.destroy()
      charts.delete(sensor)
    }
  }
  for (const sensor of selection.sensors) {
    if (charts.has(sensor)) continue
    const chart = new SensorChart(selection.region, sensor)
    charts.set(sensor, chart)
    void chart.loadHistory()
  }
  for (const sensor of selection.sensors) $('charts').append(charts.get(sensor).el)
}

new ResizeObserver(() => { for (const chart of charts.values()) chart.resize() }).observe($('charts'))

// ------------------------------------------------------------------ anomalies

/** Listed anomalies, newest first. */
let anomalies = []

function addAnomalies (list) {
  const seen = new Set(anomalies.map(anomalyKey))
  for (const a of list) {
    if (a === null || typeof a !== 'object' || typeof a.region !== 'string' || typeof a.sensor !== 'string') continue
    const key = anomalyKey(a)
    if (seen.has(key)) continue
    seen.add(key)
    anomalies.push(a)
  }
  anomalies.sort((a, b) => (b.at ?? 0) - (a.at ?? 0) || String(b.t ?? '').localeCompare(String(a.t ?? '')))
  anomalies = anomalies.slice(0, MAX_ANOMALIES)
  renderAnomalies()
}

const anomalyKey = a => `${a.region}\u0000${a.sensor}\u0000${a.t ?? a.at}\u0000${a.writer ?? ''}`

function renderAnomalies () {
  const list = $('anomalies')
  list.replaceChildren(...anomalies.map(a => {
    const z = typeof a.z === 'number' ? a.z : NaN
    return h('li', { 'data-region': a.region, 'data-sensor': a.sensor, 'data-t': String(a.t ?? ''), 'data-z': Number.isFinite(z) ? String(z) : '', class: z < 0 ? 'low' : 'high' }, [
      h('time', { class: 'muted mono' }, [typeof a.at === 'number' ? formatClock(a.at) : '']),
      h('span', { class: 'where' }, [`${a.region} · ${a.sensor}`]),
      h('span', { class: 'what' }, [`${valueText(a.value)} (z ${Number.isFinite(z) ? z.toFixed(1) : '?'}, mean ${typeof a.mean === 'number' ? a.mean.toPrecision(4) : '?'} ± ${typeof a.std === 'number' ? a.std.toPrecision(3) : '?'})`])
    ])
  }))
  $('anomalies-empty').hidden = anomalies.length > 0
}

async function loadAnomalies () {
  try {
    const from = Math.max(0, Math.floor(serverNow() - ANOMALY_WINDOW_MS))
    const body = await getJson(`v1/anomalies?from=${from}&limit=${MAX_ANOMALIES}&order=desc`)
    if (Array.isArray(body.anomalies)) addAnomalies(body.anomalies)
  } catch (err) {
    noteFailure('anomalies', err)
  }
}

// ------------------------------------------------------------------ peers

function peerName (p) {
  if (typeof p === 'string') return p
  if (p !== null && typeof p === 'object') return String(p.peerId ?? p.id ?? JSON.stringify(p))
  return String(p)
}

async function loadPeers () {
  let body
  try {
    body = await getJson('v1/peers')
  } catch (err) {
    noteFailure('peers', err)
    return
  }
  if (typeof body.peerId === 'string') $('peer-id').textContent = body.peerId
  const peers = Array.isArray(body.peers) ? body.peers.map(peerName) : []
  const count = $('peer-count')
  count.textContent = String(peers.length)
  count.setAttribute('data-count', String(peers.length))
  $('peers').replaceChildren(...peers.map(id => h('li', { 'data-peer': id, title: id }, [id])))
  const announced = body.announced !== null && typeof body.announced === 'object' ? body.announced : {}
  $('announced').replaceChildren(...Object.keys(announced).sort().flatMap(region => {
    const ids = Array.isArray(announced[region]) ? announced[region].map(peerName) : []
    return [
      h('dt', { 'data-region': region }, [region]),
      h('dd', { 'data-region': region, 'data-count': String(ids.length), title: ids.join('\n') }, [`${ids.length} peer${ids.length === 1 ? '' : 's'}`])
    ]
  }))
}

// ------------------------------------------------------------------ the stream

const stream = {
  /** @type {EventSource | null} */
  source: null,
  lastEventAt: 0,
  /** When the last summary came, and the period seen between the last two (0: not known yet). */
  lastSummaryAt: 0,
  summaryEveryMs: 0,
  /** Consecutive reconnections started by this page (not by the browser). */
  attempts: 0,
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  retryTimer: undefined,
  everConnected: false
}

function setStatus (connected, state, text) {
  const el = $('status')
  el.setAttribute('data-connected', String(connected))
  el.setAttribute('data-state', state)
  el.textContent = text
  document.body.classList.toggle('offline', !connected)
}

function parse (e) {
  try {
    return JSON.parse(e.data)
  } catch {
    return null
  }
}

function connect () {
  clearTimeout(stream.retryTimer)
  stream.retryTimer = undefined
  const es = new EventSource('v1/stream')
  stream.source = es
  stream.lastEventAt = Date.now()
  stream.lastSummaryAt = 0
  es.addEventListener('open', () => {
    if (stream.source !== es) return
    stream.attempts = 0
    stream.lastEventAt = Date.now()
    stream.everConnected = true
    setStatus(true, 'live', 'live')
    void resync()
  })
  es.addEventListener('error', () => {
    if (stream.source !== es) return
    setStatus(false, 'reconnecting', stream.everConnected ? 'stream lost: reconnecting…' : 'connecting…')
    // CONNECTING: the browser retries by itself. CLOSED: it gave up (e.g. an HTTP error), so retry here.
    if (es.readyState === EventSource.CLOSED) reconnectLater()
  })
  es.addEventListener('reading', e => {
    stream.lastEventAt = Date.now()
    const r = parse(e)
    if (r === null || typeof r.region !== 'string' || typeof r.sensor !== 'string') return
    touchRegion(r)
    sawReading(r.region, r.at)
    learnSensors(r.region, [r.sensor])
    if (r.region === selection.region) charts.get(r.sensor)?.add([r])
  })
  es.addEventListener('anomaly', e => {
    stream.lastEventAt = Date.now()
    const a = parse(e)
    if (a !== null) addAnomalies([a])
  })
  es.addEventListener('regions', e => {
    const now = Date.now()
    if (stream.lastSummaryAt !== 0) stream.summaryEveryMs = Math.min(60_000, now - stream.lastSummaryAt)
    stream.lastSummaryAt = now
    stream.lastEventAt = now
    takeSummaries(parse(e))
  })
}

function reconnectLater () {
  stream.source?.close()
  stream.source = null
  if (stream.retryTimer !== undefined) return
  const wait = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(stream.attempts, 10))
  stream.attempts++
  setStatus(false, 'reconnecting', `stream lost: reconnecting in ${formatAge(wait)}…`)
  stream.retryTimer = setTimeout(connect, wait)
}

/** Everything the stream may have missed: summaries, anomalies, peers, sensors and the charts' history. */
async function resync () {
  const tasks = [loadRegions(), loadAnomalies(), loadPeers()]
  if (selection.region !== null && regions.has(selection.region)) tasks.push(loadSensors(selection.region))
  for (const chart of charts.values()) tasks.push(chart.loadHistory())
  await Promise.all(tasks)
}

async function loadRegions () {
  try {
    takeSummaries(await getJson('v1/regions'))
  } catch (err) {
    noteFailure('regions', err)
  }
}

// ------------------------------------------------------------------ start

$('max-charts').textContent = String(MAX_CHARTS)
$('region-select').addEventListener('change', e => { selectRegion(/** @type {HTMLSelectElement} */ (e.target).value) })
$('chart-controls').addEventListener('submit', e => { e.preventDefault() })
$('sensor-filter').addEventListener('input', () => { renderPicker() })
if (selection.region !== null) {
  addRegionOption(selection.region)
  selectRegion(selection.region)
}

// Ages tick between summaries; a silent stream is treated as dead.
setInterval(() => {
  for (const entry of regions.values()) renderTile(entry)
  const silence = Math.max(SILENCE_MS, 4 * stream.summaryEveryMs)
  if (stream.source !== null && stream.source.readyState === EventSource.OPEN && Date.now() - stream.lastEventAt > silence) {
    setStatus(false, 'reconnecting', 'stream silent: reconnecting…')
    reconnectLater()
  }
}, 1000)
setInterval(() => { if (stream.source?.readyState === EventSource.OPEN) void loadPeers() }, PEERS_EVERY_MS)

connect()
