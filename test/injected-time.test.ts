/**
 * Every stage must run on the injected Clock and Random, so that tests and simulations are
 * deterministic: only core/clock.ts and core/random.ts may touch real time or Math.random.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'

const root = join(import.meta.dirname, '..', 'src')
const allowed = new Set(['core/clock.ts', 'core/random.ts'])
const forbidden =
  /\b(Date\.now|Math\.random|performance\.now|setTimeout|setInterval|clearTimeout|clearInterval)\s*\(/

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory()
      ? sources(join(dir, d.name))
      : d.name.endsWith('.ts') && !d.name.endsWith('.test.ts')
        ? [join(dir, d.name)]
        : [],
  )
}

describe('injected time and randomness', () => {
  it('no source file outside core/clock and core/random reads the real clock, timers or Math.random', () => {
    const offenders: string[] = []
    for (const file of sources(root)) {
      const rel = relative(root, file).replaceAll('\\', '/')
      if (allowed.has(rel)) continue
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          const code = line.replace(/\/\/.*$/, '')
          if (forbidden.test(code) && !/^\s*\*/.test(line)) offenders.push(`${rel}:${i + 1}: ${line.trim()}`)
        })
    }
    expect(offenders).toEqual([])
  })

  it('the check itself catches an offender', () => {
    expect(forbidden.test('const t = Date.now()')).toBe(true)
    expect(forbidden.test('setTimeout(fn, 1)')).toBe(true)
    expect(forbidden.test('clock.setTimer(fn, 1)')).toBe(false)
  })
})
