/**
 * Latency distributions for simulated endpoints. Each spec compiles to a sampler that draws
 * from the injected `Random`, so a seeded simulation draws the same latencies every run.
 */
import type { Random } from '../core/random.js'

/**
 * How long a simulated endpoint takes to answer, in ms:
 * - a number: always that long;
 * - `{ uniform: [min, max] }`;
 * - `{ normal: { mean, stdev } }` (clipped at 0);
 * - `{ logNormal: { median, p99 } }`: the usual shape of service latency, a long right tail;
 * - `{ samples: [...] }`: drawn uniformly from measured values;
 * - `{ mixture: [{ weight, latency }, ...] }`: one of several specs, by weight (rare slow
 *   answers: `{ mixture: [{ weight: 99, latency: 10 }, { weight: 1, latency: 1000 }] }`).
 */
export type LatencySpec =
  | number
  | { readonly uniform: readonly [number, number] }
  | { readonly normal: { readonly mean: number; readonly stdev: number } }
  | { readonly logNormal: { readonly median: number; readonly p99: number } }
  | { readonly samples: readonly number[] }
  | { readonly mixture: readonly { readonly weight: number; readonly latency: LatencySpec }[] }

/** Draws one latency in ms. */
export type LatencySampler = (random: Random) => number

const Z99 = 2.3263478740408408

/** A standard normal draw (Box-Muller, one value per call: simple and reproducible). */
export function standardNormal(random: Random): number {
  const u = 1 - random.next() // (0, 1]: log(0) is not finite
  const v = random.next()
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)
}

/** Compiles a {@link LatencySpec} into a sampler; throws a `RangeError` naming a bad spec. */
export function latencySampler(spec: LatencySpec): LatencySampler {
  if (typeof spec === 'number') {
    if (!(spec >= 0)) throw new RangeError(`latency: expected a non-negative number of ms, got ${spec}`)
    return () => spec
  }
  if ('uniform' in spec) {
    const [min, max] = spec.uniform
    if (!(min >= 0 && max >= min))
      throw new RangeError(`latency.uniform: expected 0 <= min <= max, got [${min}, ${max}]`)
    return (r) => min + r.next() * (max - min)
  }
  if ('normal' in spec) {
    const { mean, stdev } = spec.normal
    if (!(stdev >= 0)) throw new RangeError(`latency.normal.stdev: expected >= 0, got ${stdev}`)
    return (r) => Math.max(0, mean + stdev * standardNormal(r))
  }
  if ('logNormal' in spec) {
    const { median, p99 } = spec.logNormal
    if (!(median > 0 && p99 >= median)) {
      throw new RangeError(`latency.logNormal: expected 0 < median <= p99, got median ${median}, p99 ${p99}`)
    }
    const mu = Math.log(median)
    const sigma = Math.log(p99 / median) / Z99
    return (r) => Math.exp(mu + sigma * standardNormal(r))
  }
  if ('mixture' in spec) {
    const parts = spec.mixture.map((m, i) => {
      if (!(m.weight > 0))
        throw new RangeError(`latency.mixture[${i}].weight: expected a positive number, got ${m.weight}`)
      return { weight: m.weight, sample: latencySampler(m.latency) }
    })
    if (parts.length === 0) throw new RangeError('latency.mixture: expected at least one part')
    const total = parts.reduce((n, p) => n + p.weight, 0)
    return (r) => {
      let x = r.next() * total
      for (const p of parts) {
        x -= p.weight
        if (x < 0) return p.sample(r)
      }
      return parts[parts.length - 1]!.sample(r)
    }
  }
  const { samples } = spec
  if (samples.length === 0) throw new RangeError('latency.samples: expected at least one sample')
  return (r) => samples[Math.floor(r.next() * samples.length)]!
}
