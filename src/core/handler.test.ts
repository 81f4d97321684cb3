import { describe, expect, it } from 'vitest'
import { ManualClock } from '../testing/manual-clock.js'
import { neverCancelled } from './cancel.js'
import { Context } from './context.js'
import { compose, type Middleware } from './handler.js'
import { seededRandom } from './random.js'

const root = () =>
  Context.create({ clock: new ManualClock(), random: seededRandom(1), cancel: neverCancelled })

describe('compose', () => {
  it('runs the first stage outermost', async () => {
    const seen: string[] = []
    const stage =
      (name: string): Middleware<string, string> =>
      (next) =>
      async (req, ctx) => {
        seen.push(`>${name}`)
        const res = await next(`${req}${name}`, ctx)
        seen.push(`<${name}`)
        return res
      }
    const handler = compose(stage('a'), stage('b'))(async (req) => req)
    expect(await handler('', root())).toBe('ab')
    expect(seen).toEqual(['>a', '>b', '<b', '<a'])
  })

  it('fails loudly when a stage calls next twice with one context, naming the stage', async () => {
    const twice: Middleware<string, string> = (next) =>
      async function sloppyRetry(req, ctx) {
        await next(req, ctx)
        return next(req, ctx)
      }
    const handler = compose(twice)(async (req) => req)
    await expect(handler('x', root())).rejects.toThrow(/sloppyRetry was called twice|called twice/)
  })

  it('allows a stage to call next again with a derived context', async () => {
    let calls = 0
    const again: Middleware<string, number> = (next) => async (req, ctx) => {
      await next(req, ctx)
      return next(req, ctx.withAttempt(1))
    }
    const handler = compose(again)(async () => ++calls)
    expect(await handler('x', root())).toBe(2)
  })
})
