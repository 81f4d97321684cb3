/**
 * A windowed latency histogram for percentile-based hedge delays (Finagle's
 * `BackupRequestFilter` sends its backup at a percentile of recent latency). Buckets are
 * log-spaced (4% wide above 1 ms, 0.1 ms below), so recording is one array increment and a
 * percentile is one pass over ~300 counters; the window rolls lazily on access, with no timer.
 */

const SUB_MS = 10 // 0.1 ms buckets below 1 ms
const GROWTH = Math.log(1.04)
const BUCKETS = SUB_MS + Math.ceil(Math.log(120_000) / GROWTH) + 1 // up to 2 minutes

function bucketOf(ms: number): number {
  if (ms < 1) return Math.max(0, Math.floor(ms * SUB_MS))
  return Math.min(BUCKETS - 1, SUB_MS + Math.ceil(Math.log(ms) / GROWTH))
}

function upperBound(bucket: number): number {
  if (bucket < SUB_MS) return (bucket + 1) / SUB_MS
  return Math.exp((bucket - SUB_MS) * GROWTH)
}

/** Options of {@link LatencyHistogram}. */
export interface LatencyHistogramOptions {
  /** How far back samples count, in ms (two half-windows). Default `30_000` (Finagle's). */
  readonly window?: number
  /** Samples needed before a percentile is given. Default `100`. */
  readonly minSamples?: number
  /** How often a percentile is recomputed, in ms of clock time. Default `1000`. */
  readonly refresh?: number
}

/** Recent latencies of one destination; see the module comment. */
export class LatencyHistogram {
  #current = new Uint32Array(BUCKETS)
  #previous = new Uint32Array(BUCKETS)
  #currentCount = 0
  #previousCount = 0
  #started = Number.NaN
  readonly #half: number
  readonly #minSamples: number
  readonly #refresh: number
  readonly #cache = new Map<number, { at: number; value: number | undefined }>()

  constructor(options: LatencyHistogramOptions = {}) {
    this.#half = (options.window ?? 30_000) / 2
    this.#minSamples = options.minSamples ?? 100
    this.#refresh = options.refresh ?? 1000
  }

  #roll(now: number): void {
    if (Number.isNaN(this.#started)) {
      this.#started = now
      return
    }
    const elapsed = now - this.#started
    if (elapsed < this.#half) return
    if (elapsed < 2 * this.#half) {
      const old = this.#previous
      this.#previous = this.#current
      this.#previousCount = this.#currentCount
      old.fill(0)
      this.#current = old
    } else {
      this.#previous.fill(0)
      this.#current.fill(0)
      this.#previousCount = 0
    }
    this.#currentCount = 0
    this.#started = now - (elapsed % this.#half)
  }

  /** Records one latency (ms) observed at `now`. */
  record(ms: number, now: number): void {
    this.#roll(now)
    this.#current[bucketOf(ms)]!++
    this.#currentCount++
  }

  /** Samples in the window. */
  count(now: number): number {
    this.#roll(now)
    return this.#currentCount + this.#previousCount
  }

  /**
   * The `p`-th percentile (0 < p < 100) of the window in ms, as the upper bound of its bucket
   * (at most 4% high), or `undefined` before `minSamples` samples. Cached for `refresh` ms.
   */
  percentile(p: number, now: number): number | undefined {
    const cached = this.#cache.get(p)
    if (cached !== undefined && now - cached.at < this.#refresh) return cached.value
    const total = this.count(now)
    let value: number | undefined
    if (total >= this.#minSamples) {
      const rank = Math.ceil((p / 100) * total)
      let seen = 0
      for (let b = 0; b < BUCKETS; b++) {
        seen += this.#current[b]! + this.#previous[b]!
        if (seen >= rank) {
          value = upperBound(b)
          break
        }
      }
    }
    this.#cache.set(p, { at: now, value })
    return value
  }
}
