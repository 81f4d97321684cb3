import { describe, expect, it } from 'vitest'
import { Cancellation } from './cancel.js'
import { systemClock } from './clock.js'
import { Context } from './context.js'
import { Exits, isJoiningExits, joinsExits, runScoped } from './exits.js'
import { systemRandom } from './random.js'

const ctx = Context.create({ clock: systemClock, random: systemRandom, cancel: new Cancellation() })

describe('Exits', () => {
  it('runs every hook once, the last added first, with its own values and the outcome', () => {
    const exits = new Exits()
    const seen: unknown[] = []
    for (let i = 0; i < 5; i++) exits.add((a, b, ok, result) => seen.push([a, b, ok, result]), i, `b${i}`)
    exits.run(false, 'boom', 'req', ctx)
    exits.run(true, 'again', 'req', ctx)
    expect(seen).toEqual([4, 3, 2, 1, 0].map((i) => [i, `b${i}`, false, 'boom']))
  })

  it('a hook that throws does not stop the others; the first error comes out after the last hook', () => {
    const exits = new Exits()
    const ran: number[] = []
    for (let i = 0; i < 4; i++) {
      exits.add(
        () => {
          ran.push(i)
          if (i === 3 || i === 1) throw new Error(`hook ${i}`)
        },
        i,
        0,
      )
    }
    expect(() => exits.run(true, 'v', 'req', ctx)).toThrow('hook 3')
    expect(ran).toEqual([3, 2, 1, 0])
  })

  it('gives each hook the request and the context it was run with', () => {
    const exits = new Exits()
    let got: unknown[] = []
    exits.add(
      (_a, _b, _ok, _result, req, c) => {
        got = [req, c]
      },
      1,
      2,
    )
    exits.run(true, 'v', 'the request', ctx)
    expect(got).toEqual(['the request', ctx])
  })

  it('keeps the classifier of its owner, and gives every hook the verdict the owner passes (D34)', () => {
    const judge = () => 'success' as const
    const exits = new Exits(judge)
    expect(exits.judge).toBe(judge)
    expect(new Exits().judge).toBeUndefined()
    const verdicts: unknown[] = []
    for (let i = 0; i < 3; i++) exits.add((...args) => verdicts.push(args[6]), i, 0)
    exits.run(true, 'v', 'req', ctx, 'retryable')
    expect(verdicts).toEqual(['retryable', 'retryable', 'retryable'])
    // Run without one (the owner could not judge): the hooks get none and judge for themselves.
    const unjudged = new Exits(judge)
    unjudged.add((...args) => verdicts.push(args[6]), 0, 0)
    unjudged.run(false, 'e', 'req', ctx)
    expect(verdicts.at(-1)).toBeUndefined()
    expect(verdicts).toHaveLength(4)
  })

  it('a context keeps its scope through with, withDeadline and withCancel, and loses it with withAttempt and restarted', () => {
    const exits = new Exits()
    const scoped = ctx.withExits(exits)
    expect(scoped.exits).toBe(exits)
    expect(ctx.exits).toBeUndefined()
    expect(scoped.withDeadline(5).exits).toBe(exits)
    expect(scoped.withCancel(new Cancellation()).exits).toBe(exits)
    expect(scoped.withAttempt(1).exits).toBeUndefined()
    expect(scoped.restarted().exits).toBeUndefined()
    expect(scoped.withAttempt(1, scoped.cancel, exits).exits).toBe(exits)
  })

  it('runScoped runs the exits once on a value, a rejection and a synchronous throw, and passes the outcome on', async () => {
    const log: string[] = []
    const scope = () => {
      const exits = new Exits()
      exits.add((_a, _b, ok, result) => log.push(`${ok}:${String(result)}`), 0, 0)
      return exits
    }
    const ok = scope()
    await expect(runScoped(async () => 'v', 'r', ctx.withExits(ok), ok)).resolves.toBe('v')
    const rejected = scope()
    await expect(
      runScoped(() => Promise.reject(new Error('no')), 'r', ctx.withExits(rejected), rejected),
    ).rejects.toThrow('no')
    const thrown = scope()
    const throwing = () => {
      throw new Error('sync')
    }
    await expect(runScoped(throwing, 'r', ctx.withExits(thrown), thrown)).rejects.toThrow('sync')
    expect(log).toEqual(['true:v', 'false:Error: no', 'false:Error: sync'])
  })

  it('marks joiners, and nothing else', () => {
    const plain = async () => 1
    expect(isJoiningExits(plain)).toBe(false)
    expect(isJoiningExits(joinsExits(async () => 1))).toBe(true)
  })
})
