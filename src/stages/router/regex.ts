/**
 * Regular expressions from configuration, matched in linear time. Every `regex` a route names
 * (header, query and path matchers, and Istio's `regex` StringMatch) is RE2 syntax run on
 * `re2js`, a pure-JavaScript port of RE2: no backtracking, so a match costs time linear in the
 * value whatever the pattern (V8's backtracking engine took seconds on `(a+)+b` against 27 `a`s).
 * This is also what Envoy does with `safe_regex`, so an Istio resource's pattern means here
 * what it means in Istio: the same dialect, and a full match (the whole value must match).
 *
 * Bounds (docs/decisions.md D50), as Envoy under Istio: a pattern compiles to at most
 * {@link MAX_PROGRAM_SIZE} RE2 instructions (Istio sets `re2.max_program_size.error_level` to
 * 32768), and RE2's own rules hold (a counted repetition at most 1000, nesting bounded); its text
 * is at most {@link MAX_PATTERN_LENGTH} long. The size is estimated from the text before
 * compiling, so that a pattern far over the bound is refused without the cost of compiling it.
 * Matching costs O(program size x value length) at worst; re2js's DFA keeps to 8 MiB per pattern
 * and falls back to its NFA past it. The costs measured are in D49.
 *
 * Two shapes skip the engine because they are provably the same test (D49): a pattern with no
 * metacharacter is an equality, and such a literal followed by `.*` is a prefix test whose rest
 * holds no `\n` (RE2's `.` matches anything but a newline).
 */
import { RE2JS } from 're2js'

/** A compiled pattern. `test(value)` holds when the pattern matches the whole of `value`. */
export interface Pattern {
  /** The pattern as written. */
  readonly source: string
  /** Whether the pattern matches all of `value` (a full match, as Envoy's `safe_regex`). */
  test(value: string): boolean
}

/** The largest RE2 program a pattern may compile to, in instructions: Istio's bound (32768). */
export const MAX_PROGRAM_SIZE = 32_768

/** The longest pattern text accepted, in UTF-16 code units: 32768 (the program bound). */
export const MAX_PATTERN_LENGTH = 32_768

/**
 * The most Unicode class escapes (`\pL`, `\p{Greek}`, `\PN`) a pattern may hold: 256. re2js
 * builds each from its tables, ~40 us apiece (~120 us under `(?i)`), so 20,000 of them cost
 * seconds to compile while counting as one instruction each.
 */
export const MAX_UNICODE_CLASSES = 256

// RE2's metacharacters; a pattern of printable ASCII without any of them is a literal.
const LITERAL = /^[\x20-\x7e]*$/
const META = /[\\.+*?()|[\]{}^$]/

/**
 * Compiles an RE2 pattern for full matches. Throws a `SyntaxError` whose message is RE2's
 * (re2js's) reason when the pattern is not valid RE2 (a backreference, a lookaround, ...) or
 * is over the bounds above; {@link regexProblem} gives the same reason without throwing.
 */
export function compileRegex(pattern: string): Pattern {
  if (pattern.length > MAX_PATTERN_LENGTH) {
    throw new SyntaxError(`pattern of ${pattern.length} characters is over ${MAX_PATTERN_LENGTH}`)
  }
  const fast = literalPattern(pattern)
  if (fast !== undefined) return fast
  const re = compileRe2(withoutAnchors(pattern))
  return { source: pattern, test: (value) => re.testExact(value) }
}

/**
 * `pattern` without a leading `^` and a trailing `$`, which a full match makes redundant (it
 * starts at the text's start and ends at its end, where `^` and `$` hold, `(?m)` or not); re2js
 * matches about three times faster without them (D49). The `^` is kept when a quantifier or a
 * group follows it (`^?a` and `^(?s)+` are valid RE2, `?a` and `(?s)+` are not), the `$` when
 * it is escaped, and both with `\Q` (quoted text).
 */
function withoutAnchors(pattern: string): string {
  if (pattern.includes('\\Q')) return pattern
  let start = 0
  let end = pattern.length
  if (pattern.startsWith('^') && !/^[*+?{(]/.test(pattern.slice(1, 2))) start = 1
  if (end - start > 0 && pattern.endsWith('$')) {
    let slashes = 0
    while (end - 2 - slashes >= start && pattern[end - 2 - slashes] === '\\') slashes++
    if (slashes % 2 === 0) end--
  }
  return pattern.slice(start, end)
}

/** Why `pattern` is not an acceptable RE2 pattern, or `undefined` when it is. */
export function regexProblem(pattern: string): string | undefined {
  try {
    compileRegex(pattern)
    return undefined
  } catch (e) {
    return (e as Error).message
  }
}

/**
 * The equality or prefix test a pattern is, when it is one: `canary`, `^canary$`, `/api/.*`.
 * Equivalence: with no metacharacter every character is a literal that RE2 matches as itself
 * (case-sensitive, no flags are possible without `(`), `^` and `$` are the text's ends outside
 * multi-line mode, and `.*` matches any run without `\n`.
 */
function literalPattern(pattern: string): Pattern | undefined {
  if (!LITERAL.test(pattern)) return undefined
  let body = pattern
  if (body.startsWith('^')) body = body.slice(1)
  if (body.endsWith('$')) body = body.slice(0, -1)
  const prefix = body.endsWith('.*')
  if (prefix) body = body.slice(0, -2)
  if (META.test(body)) return undefined
  const text = body
  if (!prefix) return { source: pattern, test: (value) => value === text }
  return {
    source: pattern,
    test: (value) => value.startsWith(text) && value.indexOf('\n', text.length) < 0,
  }
}

function compileRe2(pattern: string): RE2JS {
  const unicodeClasses = pattern.match(/\\[pP]/g)?.length ?? 0
  if (unicodeClasses > MAX_UNICODE_CLASSES) {
    throw new SyntaxError(
      `pattern has ${unicodeClasses} Unicode class escapes (\\p, \\P), over the ${MAX_UNICODE_CLASSES} allowed`,
    )
  }
  // The estimate is within a few percent of RE2's program size where counted repetitions
  // multiply, so twice the bound refuses `[a-z]{1000}` x 1000 (a million instructions, about a
  // second to compile) before compiling it, and nothing Istio accepts. Where RE2 factors
  // alternatives (`/a/1|/a/2` shares `/a/`) the estimate overcounts, but a pattern without
  // counted repetitions is never refused here: its estimate is at most twice its length.
  const estimate = estimateProgramSize(pattern)
  if (estimate > ESTIMATE_LIMIT) {
    throw new SyntaxError(
      `pattern expands to about ${estimate} RE2 instructions, over the ${MAX_PROGRAM_SIZE} allowed`,
    )
  }
  let re: RE2JS
  try {
    re = RE2JS.compile(pattern)
  } catch (e) {
    // re2js quotes the pattern from the fault to its end: keep a message readable.
    const message = String((e as Error).message)
    throw new SyntaxError(message.length > 160 ? `${message.slice(0, 159)}…` : message)
  }
  const size = re.programSize()
  if (size > MAX_PROGRAM_SIZE) {
    throw new SyntaxError(
      `pattern compiles to ${size} RE2 instructions, over the ${MAX_PROGRAM_SIZE} allowed`,
    )
  }
  return re
}

/** Estimates above this are refused without compiling (see compileRe2). */
export const ESTIMATE_LIMIT = 2 * MAX_PROGRAM_SIZE

const REPEAT = /^\{(\d+)(,(\d*))?\}/

/**
 * About how many RE2 instructions `pattern` compiles to: one per literal, class or escape,
 * counted repetitions multiplied out, one more per operator. Reads any text (invalid patterns
 * included) in one pass without recursion, so a deep nesting cannot overflow the stack.
 */
export function estimateProgramSize(pattern: string): number {
  interface Frame {
    alts: number
    seq: number
    last: number
    /** What the group adds: 2 for a capture (its two slots), 0 for `(?:`. */
    cap: number
    /** Whether every alternative so far is one atom of size 1 (RE2 merges `a|b|c` into a class). */
    single: boolean
  }
  const stack: Frame[] = []
  let f: Frame = { alts: 0, seq: 0, last: 0, cap: 0, single: true }
  const close = (g: Frame): number => (g.alts > 0 && g.single && g.seq <= 1 ? 1 : g.alts + g.seq) + g.cap
  const atom = (n: number): void => {
    f.seq += n
    f.last = n
  }
  const n = pattern.length
  let i = 0
  while (i < n) {
    const c = pattern[i]!
    if (c === '\\') {
      const d = pattern[i + 1]
      if (d === 'Q') {
        const e = pattern.indexOf('\\E', i + 2)
        const end = e < 0 ? n : e
        f.seq += end - (i + 2)
        f.last = 1
        i = e < 0 ? n : e + 2
      } else if ((d === 'p' || d === 'P' || d === 'x') && pattern[i + 2] === '{') {
        const e = pattern.indexOf('}', i + 3)
        i = e < 0 ? n : e + 1
        atom(1)
      } else {
        i += d === 'p' || d === 'P' ? 3 : d === 'x' ? 4 : 2
        atom(1)
      }
    } else if (c === '[') {
      let j = i + 1
      if (pattern[j] === '^') j++
      if (pattern[j] === ']') j++
      while (j < n && pattern[j] !== ']') {
        if (pattern[j] === '\\') j += 2
        else if (pattern.startsWith('[:', j)) {
          const e = pattern.indexOf(':]', j + 2)
          j = e < 0 ? j + 1 : e + 2
        } else j++
      }
      i = j + 1
      atom(1)
    } else if (c === '(') {
      i++
      let cap = 2
      if (pattern[i] === '?') {
        if (pattern[i + 1] === 'P' || pattern[i + 1] === '<') {
          const e = pattern.indexOf('>', i)
          i = e < 0 ? n : e + 1
        } else {
          let k = i + 1
          while (k < n && pattern[k] !== ':' && pattern[k] !== ')') k++
          i = k + 1
          if (pattern[k] === ')') continue // `(?i)`: flags only, no group
          cap = 0
        }
      }
      stack.push(f)
      f = { alts: 0, seq: 0, last: 0, cap, single: true }
    } else if (c === ')') {
      i++
      const inner = close(f)
      const outer = stack.pop()
      if (outer === undefined) continue
      f = outer
      atom(inner)
    } else if (c === '|') {
      i++
      if (f.seq > 1) f.single = false
      f.alts += f.seq + 1
      f.seq = 0
      f.last = 0
    } else if (c === '*' || c === '+' || c === '?') {
      i++
      f.seq += 1
    } else if (c === '{') {
      const m = REPEAT.exec(pattern.slice(i, i + 24))
      if (m === null) {
        i++
        atom(1)
      } else {
        i += m[0].length
        const min = Number(m[1])
        const max = m[2] === undefined ? min : m[3] === '' ? min + 1 : Number(m[3])
        const times = Math.max(min, max, 1)
        f.seq += f.last * (times - 1) + 1
        f.last *= times
      }
    } else {
      i++
      atom(1)
    }
  }
  while (stack.length > 0) {
    const inner = close(f)
    f = stack.pop()!
    atom(inner)
  }
  return f.alts + f.seq
}
