/**
 * Randomness, injected: balancers, jitter and fault injection draw from a {@link Random}, so a
 * seeded one makes every decision of a run reproducible.
 */

/** A source of uniform numbers in [0, 1). */
export interface Random {
  /** A uniform number in [0, 1). */
  next(): number
}

/** `Math.random`, for production. */
export const systemRandom: Random = { next: () => Math.random() }

/**
 * A fast, seeded generator (sfc32, seeded through splitmix32): the same seed gives the same
 * sequence on every platform and Node version.
 *
 * @example
 * ```ts
 * const r = seededRandom(42)
 * r.next() // always the same first number for seed 42
 * ```
 */
export function seededRandom(seed: number): Random {
  let s = seed >>> 0
  const splitmix = () => {
    s = (s + 0x9e3779b9) | 0
    let z = s
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
    return (z ^ (z >>> 16)) >>> 0
  }
  let a = splitmix()
  let b = splitmix()
  let c = splitmix()
  let d = splitmix()
  const next = () => {
    const t = (((a + b) | 0) + d) | 0
    d = (d + 1) | 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) | 0
    c = (c << 21) | (c >>> 11)
    c = (c + t) | 0
    return (t >>> 0) / 4294967296
  }
  for (let i = 0; i < 12; i++) next()
  return { next }
}
