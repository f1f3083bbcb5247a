/**
 * The reference model of a chaos run and the invariant checks, as pure functions over what the
 * harness recorded (acknowledged readings, readings in doubt, reads, final views).
 *
 * The model of a region is, per sensor, the acknowledged written reading with the greatest
 * (t, writer), t compared as the fixed-width HLC string, then the writer id: the winner order of
 * packages/region-state (`greater`). Readings of a request that got no answer (the gateway was
 * killed, a timeout) are *in doubt*: they may or may not have been written; a replica may show
 * one only where it beats the acknowledged winner, and then every replica must show it.
 */

/** A reading as a replica shows it (GET /v1/sensors/:id). */
export interface Shown {
  value: unknown
  t: string
  writer: string
}

/** A written reading acknowledged by a gateway (`POST /v1/readings?echo=1`). */
export interface Acked extends Shown {
  region: string
  sensor: string
  /** Index of the gateway that acknowledged it. */
  gateway: number
  /** The gateway's life (0 at start, +1 at each SIGKILL) when the request was sent. */
  life: number
}

/** A reading of a request without a reply: maybe written, by `writer`. */
export interface InDoubt {
  region: string
  sensor: string
  value: unknown
  writer: string
}

/** region -> sensor -> reading */
export type View = Map<string, Shown>

/** (t, writer) order of region-state: positive when a wins over b. */
export function compareReadings (a: { t: string, writer: string }, b: { t: string, writer: string }): number {
  if (a.t !== b.t) return a.t > b.t ? 1 : -1
  if (a.writer !== b.writer) return a.writer > b.writer ? 1 : -1
  return 0
}

const key = (r: { region: string, sensor: string }): string => r.region + '\n' + r.sensor
const sameValue = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b)

/** Acknowledged readings without repeats (an idempotent replay acknowledges the same ones again). */
export function uniqueAcked (acked: readonly Acked[]): Acked[] {
  const seen = new Set<string>()
  const out: Acked[] = []
  for (const a of acked) {
    const k = `${a.region}\n${a.sensor}\n${a.t}\n${a.writer}`
    if (seen.has(k)) continue
    seen.add(k)
    out.push(a)
  }
  return out
}

/** The model: per region, per sensor, the acknowledged reading with the greatest (t, writer). */
export function buildModel (acked: readonly Acked[]): Map<string, Map<string, Acked>> {
  const model = new Map<string, Map<string, Acked>>()
  for (const a of acked) {
    let m = model.get(a.region)
    if (m === undefined) model.set(a.region, m = new Map())
    const cur = m.get(a.sensor)
    if (cur === undefined || compareReadings(a, cur) > 0) m.set(a.sensor, a)
  }
  return model
}

export interface ReplicaView {
  gateway: number
  region: string
  view: View
}

export interface ViewCheck {
  /** Every replica agrees with the model (in-doubt readings allowed where they win) and with each other. */
  converged: boolean
  /** Acknowledged readings that some replica neither shows nor shows beaten by a newer reading. */
  lost: Acked[]
  /** Replicas (gateway indexes) whose view differs from the expected one. */
  divergent: number[]
  /** Human-readable differences, at most a few per replica. */
  problems: string[]
}

/**
 * Checks the final views of the replicas that must agree (the gateway beyond the drift bound is
 * left out by the caller) against the model. `fencedWriter` is the skewed gateway's peer id:
 * a reading of it at any of these replicas is a problem.
 */
export function checkViews (replicas: readonly ReplicaView[], acked: readonly Acked[], inDoubt: readonly InDoubt[], fencedWriter: string): ViewCheck {
  const model = buildModel(acked)
  const doubt = new Map<string, InDoubt[]>()
  for (const d of inDoubt) {
    const k = key(d)
    const list = doubt.get(k)
    if (list === undefined) doubt.set(k, [d])
    else list.push(d)
  }
  const problems: string[] = []
  const divergent = new Set<number>()
  const lost = new Set<Acked>()
  // The expected view of each region: the model, raised to a shown in-doubt reading where one beats it.
  const expected = new Map<string, Map<string, Shown>>()
  for (const rv of replicas) {
    let exp = expected.get(rv.region)
    if (exp === undefined) {
      exp = new Map<string, Shown>(model.get(rv.region) ?? [])
      expected.set(rv.region, exp)
    }
    for (const [sensor, v] of rv.view) {
      const cur = exp.get(sensor)
      if (cur !== undefined && compareReadings(v, cur) <= 0) continue
      const candidates = doubt.get(rv.region + '\n' + sensor) ?? []
      if (candidates.some(d => d.writer === v.writer && sameValue(d.value, v.value))) exp.set(sensor, v)
    }
  }
  for (const rv of replicas) {
    const exp = expected.get(rv.region) as Map<string, Shown>
    const mine: string[] = []
    for (const [sensor, v] of rv.view) {
      if (v.writer === fencedWriter) mine.push(`${rv.region}/${sensor}: shows a reading of the gateway beyond the drift bound (t ${v.t})`)
      const e = exp.get(sensor)
      if (e === undefined) mine.push(`${rv.region}/${sensor}: shows ${JSON.stringify(v)}, which no request wrote`)
      else if (compareReadings(v, e) > 0) mine.push(`${rv.region}/${sensor}: shows ${JSON.stringify(v)}, newer than every acknowledged or in-doubt reading (${JSON.stringify(e)})`)
      else if (compareReadings(v, e) === 0 && !sameValue(v.value, e.value)) mine.push(`${rv.region}/${sensor}: value ${JSON.stringify(v.value)}, expected ${JSON.stringify(e.value)} (t ${v.t})`)
    }
    for (const [sensor, e] of exp) {
      const v = rv.view.get(sensor)
      if (v === undefined) mine.push(`${rv.region}/${sensor}: missing, expected ${JSON.stringify(e)}`)
      else if (compareReadings(v, e) < 0) mine.push(`${rv.region}/${sensor}: shows ${JSON.stringify(v)}, older than expected ${JSON.stringify(e)}`)
    }
    if (mine.length > 0) {
      divergent.add(rv.gateway)
      problems.push(...mine.slice(0, 5).map(p => `g${rv.gateway}: ${p}`))
      if (mine.length > 5) problems.push(`g${rv.gateway}: … ${mine.length - 5} more`)
    }
  }
  // Lost: an acknowledged reading that a replica neither shows nor shows beaten.
  for (const a of acked) {
    for (const rv of replicas) {
      if (rv.region !== a.region) continue
      const v = rv.view.get(a.sensor)
      if (v === undefined || compareReadings(v, a) < 0) lost.add(a)
    }
  }
  return { converged: problems.length === 0, lost: [...lost], divergent: [...divergent].sort((a, b) => a - b), problems }
}

/**
 * No HLC goes backwards across restarts: every t a gateway acknowledged in a life is greater than
 * every t it acknowledged in an earlier life. Returns the violations.
 */
export function checkHlcAcrossRestarts (acked: readonly Acked[]): string[] {
  const byGateway = new Map<number, Acked[]>()
  for (const a of acked) {
    const list = byGateway.get(a.gateway)
    if (list === undefined) byGateway.set(a.gateway, [a])
    else list.push(a)
  }
  const out: string[] = []
  for (const [g, list] of byGateway) {
    const maxByLife = new Map<number, string>()
    for (const a of list) if ((maxByLife.get(a.life) ?? '') < a.t) maxByLife.set(a.life, a.t)
    for (const a of list) {
      for (const [life, max] of maxByLife) {
        if (life < a.life && a.t <= max) {
          out.push(`g${g}: acknowledged t ${a.t} (${a.region}/${a.sensor}) in life ${a.life}, not above t ${max} acknowledged in life ${life}`)
          break
        }
      }
    }
  }
  return out
}

/** A read that went back: the reading shown before and what was shown after. */
export interface BackwardRead {
  gateway: number
  region: string
  sensor: string
  /** The reading shown before, and the gateway's life then. */
  before: { t: string, writer: string, life: number }
  /** What was shown after (undefined: 404), and the life. */
  after: { t: string, writer: string } | undefined
  life: number
}

/**
 * Monotonic reads of one client against one gateway (across its restarts): per sensor, the t
 * shown never goes back, and a sensor once shown never disappears. A gateway replies to a read
 * only once what it shows is durable, so a SIGKILL cannot take back what a client read either.
 */
export class MonotonicReads {
  private readonly last = new Map<string, { t: string, writer: string, life: number }>()
  readonly backward: BackwardRead[] = []
  reads = 0
  private readonly gateway: number

  constructor (gateway: number) {
    this.gateway = gateway
  }

  /** Records one read; `shown` undefined when the gateway answered 404. */
  observe (region: string, sensor: string, shown: { t: string, writer: string } | undefined, life: number): void {
    this.reads++
    const k = region + '\n' + sensor
    const prev = this.last.get(k)
    if (prev !== undefined && (shown === undefined || shown.t < prev.t)) {
      this.backward.push({ gateway: this.gateway, region, sensor, before: prev, after: shown === undefined ? undefined : { t: shown.t, writer: shown.writer }, life })
      // One report per step back: later reads compare with what this one showed.
      if (shown === undefined) this.last.delete(k)
      else this.last.set(k, { t: shown.t, writer: shown.writer, life })
      return
    }
    if (shown !== undefined && (prev === undefined || shown.t > prev.t)) this.last.set(k, { t: shown.t, writer: shown.writer, life })
  }
}

export function describeBackwardRead (b: BackwardRead): string {
  const after = b.after === undefined ? 'nothing (404)' : `t ${b.after.t} (writer ${b.after.writer})`
  return `g${b.gateway}: ${b.region}/${b.sensor} read ${after} in life ${b.life} after t ${b.before.t} (writer ${b.before.writer}) in life ${b.before.life}`
}
