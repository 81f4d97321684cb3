/**
 * Durations as people write them in config ('250ms', '2s', or a number of ms), turned into
 * milliseconds, the one unit the mesh computes in.
 */

/** The units a duration string may end with. */
export type DurationUnit = 'ms' | 's' | 'm' | 'h'

/**
 * A duration in config: milliseconds as a number, or a string with a unit (`'250ms'`, `'1.5s'`,
 * `'1m'`, `'1h'`); `'0'` is the one string allowed without a unit. Typed as any string so that
 * configs held in variables or read from JSON/YAML type-check; the format is checked when the
 * config is parsed.
 */
export type Duration = number | string

const MS_PER_UNIT: Record<DurationUnit, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** The accepted strings; its `source` is reused as the JSON Schema `pattern`, so both agree. */
export const DURATION_PATTERN = /^(?:0|(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h))$/

/**
 * The number of milliseconds `value` stands for, or `undefined` when it is not a duration
 * (negative, not finite, no unit, unknown unit, spaces or exponents).
 */
export function toMilliseconds(value: number | string): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value + 0 : undefined
  if (typeof value !== 'string') return undefined
  const match = DURATION_PATTERN.exec(value)
  if (match === null) return undefined
  const [, amount, unit] = match
  if (amount === undefined || unit === undefined) return 0
  const ms = Number(amount) * MS_PER_UNIT[unit as DurationUnit]
  // Round to the microsecond so '1.1s' is 1100, not 1100.0000000000002.
  return Number.isFinite(ms) ? Math.round(ms * 1000) / 1000 : undefined
}
