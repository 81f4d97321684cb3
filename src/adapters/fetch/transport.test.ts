import { describe, expect, it } from 'vitest'
import { Cancellation } from '../../core/cancel.js'
import { Context } from '../../core/context.js'
import { isSettlingOnCancel } from '../../core/handler.js'
import { seededRandom } from '../../core/random.js'
import { ENDPOINT, Endpoint } from '../../stages/balancer/endpoint.js'
import { DEADLINE_HEADER } from '../../stages/deadline/propagation.js'
import { ManualClock } from '../../testing/manual-clock.js'
import { toHttpRequest } from './request.js'
import { fetchTransport } from './transport.js'

// biome-ignore lint/suspicious/noExplicitAny: undici's handler and options are untyped here
type Any = any

/** What the fake fetch below was given, per call. */
interface Sent {
  readonly init: RequestInit & { dispatcher?: Any }
  /** The options and handler the attempt's dispatcher passed to the target dispatcher. */
  options?: Any
  handler?: Any
}

/**
 * A fetch that, like undici's, sends through `init.dispatcher` (when `dispatches`), handing it
 * `options` and a classic handler (or `controller` form), and answers once told to.
 */
function fakeUndici(opts: { dispatches?: boolean; options?: () => Any; controllerForm?: boolean } = {}) {
  const sent: Sent[] = []
  const pending: Array<{ answer: (res: Response) => void; fail: (e: unknown) => void; errors: unknown[] }> =
    []
  const fetchFn = ((_url: string, init: RequestInit & { dispatcher?: Any }) =>
    new Promise<Response>((answer, fail) => {
      const errors: unknown[] = []
      pending.push({ answer, fail, errors })
      sent.push({ init })
      if (opts.dispatches === false || init.dispatcher === undefined) return
      // As fetch's: an error ends the request (aborting it once connected, or at `onConnect`)
      // and rejects the call as a network error.
      let terminated = false
      let abort: ((e: unknown) => void) | undefined
      const failed = (e: unknown) => {
        errors.push(e)
        if (!terminated) {
          terminated = true
          abort?.(e)
        }
        fail(new TypeError('fetch failed', { cause: e }))
      }
      const handler = opts.controllerForm
        ? {
            onRequestStart() {},
            onResponseError: (_c: unknown, e: unknown) => failed(e),
          }
        : {
            onConnect(a: (e: unknown) => void) {
              if (terminated) a(new DOMException('The operation was aborted.', 'AbortError'))
              else abort = a
            },
            onHeaders() {},
            onData() {},
            onComplete() {},
            onError: failed,
          }
      init.dispatcher.dispatch(opts.options?.() ?? { path: '/x', headers: { accept: '*/*' } }, handler)
    })) as unknown as typeof fetch
  return { fetchFn, sent, pending }
}

/** A dispatcher standing in for undici's: records what it is given; `start` starts the request. */
function target() {
  const calls: Array<{ options: Any; handler: Any }> = []
  const aborts: unknown[] = []
  return {
    calls,
    aborts,
    dispatcher: {
      dispatch(options: Any, handler: Any) {
        calls.push({ options, handler })
        return true
      },
    },
    /** Starts the last request as undici would (classic `onConnect`, or `onRequestStart`). */
    start() {
      const { handler } = calls[calls.length - 1]!
      if (typeof handler.onRequestStart === 'function')
        handler.onRequestStart({ abort: (r: unknown) => aborts.push(r) }, {})
      else handler.onConnect((r: unknown) => aborts.push(r), {})
    },
  }
}

function context(deadline = 1500) {
  const clock = new ManualClock({ start: 1000 })
  const cancel = new Cancellation()
  const ctx = Context.create({ clock, random: seededRandom(1), cancel, deadline }).with(
    ENDPOINT,
    new Endpoint({ address: 'http://127.0.0.1:1' }),
  )
  return { ctx, cancel }
}

/** A transport that has seen a first answer through its dispatcher, so the next attempt uses it. */
async function learnt(fake: ReturnType<typeof fakeUndici>, dispatcher?: Any) {
  const transport = fetchTransport(fake.fetchFn)
  const first = transport(
    toHttpRequest('c', '/x', 'http://c/x', { dispatcher } as RequestInit),
    context().ctx,
  )
  fake.pending[0]!.answer(new Response('ok'))
  await first
  return transport
}

describe('fetchTransport: closing a request through its dispatcher', () => {
  it('gives the first attempt a signal and a dispatcher; later ones only a dispatcher', async () => {
    const fake = fakeUndici()
    const t = target()
    const transport = await learnt(fake, t.dispatcher)
    expect(fake.sent[0]!.init.signal).toBeInstanceOf(AbortSignal)
    expect(fake.sent[0]!.init.dispatcher).toBeDefined()
    expect(new Headers(fake.sent[0]!.init.headers).get(DEADLINE_HEADER)).toBe('500')

    const { ctx } = context()
    const done = transport(
      toHttpRequest('c', '/x', 'http://c/x', { dispatcher: t.dispatcher } as RequestInit),
      ctx,
    )
    expect(fake.sent[1]!.init.signal).toBeUndefined()
    expect(fake.sent[1]!.init.headers).toBeUndefined()
    // The header goes in at the dispatcher, into the options fetch built.
    expect(t.calls[1]!.options.headers).toEqual({ accept: '*/*', [DEADLINE_HEADER]: '500' })
    fake.pending[1]!.answer(new Response('ok'))
    expect(await (await done).text()).toBe('ok')
  })

  it('rejects at the cancellation even when the fetch function ignores its signal (a stub)', async () => {
    const deaf = (() => new Promise<Response>(() => {})) as unknown as typeof fetch
    const transport = fetchTransport(deaf)
    const { ctx, cancel } = context()
    const attempt = transport(toHttpRequest('c', '/x', 'http://c/x', undefined), ctx).catch((e: unknown) => e)
    const reason = new Error('deadline')
    cancel.abort(reason)
    expect(await attempt).toBe(reason)
    expect(cancel.listenerCount).toBe(0)
    // The attempt timeout relies on that only around the global fetch, which ends its request
    // at the dispatcher's failure; a wrapper of fetch may hold a rejection back.
    expect(isSettlingOnCancel(transport as never)).toBe(false)
    expect(isSettlingOnCancel(fetchTransport(globalThis.fetch) as never)).toBe(true)
  })

  it('keeps a signal per attempt for a fetch that never calls the dispatcher', async () => {
    const fake = fakeUndici({ dispatches: false })
    const transport = fetchTransport(fake.fetchFn)
    for (let i = 0; i < 3; i++) {
      const done = transport(toHttpRequest('c', '/x', 'http://c/x', undefined), context().ctx)
      fake.pending[i]!.answer(new Response('ok'))
      await done
    }
    expect(fake.sent[0]!.init.dispatcher).toBeDefined()
    for (const s of fake.sent.slice(1)) {
      expect(s.init.signal).toBeInstanceOf(AbortSignal)
      expect(s.init.dispatcher).toBeUndefined()
      expect(new Headers(s.init.headers).get(DEADLINE_HEADER)).toBe('500')
    }
  })

  it('goes back to a signal per attempt once an answer skips the dispatcher (a request mock)', async () => {
    const opts: { dispatches?: boolean } = {}
    const fake = fakeUndici(opts)
    const t = target()
    const transport = await learnt(fake, t.dispatcher)
    const send = async (i: number) => {
      const done = transport(
        toHttpRequest('c', '/x', 'http://c/x', { dispatcher: t.dispatcher } as RequestInit),
        context().ctx,
      )
      fake.pending[i]!.answer(new Response(null))
      await done
    }
    opts.dispatches = false // this wrapper now answers by itself
    await send(1)
    expect(fake.sent[1]!.init.signal).toBeUndefined()
    await send(2)
    expect(fake.sent[2]!.init.signal).toBeInstanceOf(AbortSignal)
    expect(new Headers(fake.sent[2]!.init.headers).get(DEADLINE_HEADER)).toBe('500')
    opts.dispatches = true // never trusted again: the portable way stays
    await send(3)
    expect(fake.sent[3]!.init.signal).toBeInstanceOf(AbortSignal)
    expect(fake.sent[3]!.init.dispatcher).toBe(t.dispatcher)
  })

  it('keeps a signal for a call with a signal of its own', async () => {
    const fake = fakeUndici()
    const t = target()
    const transport = await learnt(fake, t.dispatcher)
    const caller = new AbortController()
    const done = transport(
      toHttpRequest('c', '/x', 'http://c/x', {
        signal: caller.signal,
        dispatcher: t.dispatcher,
      } as RequestInit),
      context().ctx,
    )
    expect(fake.sent[1]!.init.signal).toBeInstanceOf(AbortSignal)
    expect(fake.sent[1]!.init.signal).not.toBe(caller.signal)
    fake.pending[1]!.answer(new Response(null))
    await done
  })

  it('rejects at once with the reason and aborts a started request', async () => {
    const fake = fakeUndici()
    const t = target()
    const transport = await learnt(fake, t.dispatcher)
    const { ctx, cancel } = context()
    const done = transport(
      toHttpRequest('c', '/x', 'http://c/x', { dispatcher: t.dispatcher } as RequestInit),
      ctx,
    )
    t.start()
    const reason = new Error('hedge lost')
    cancel.abort(reason)
    await expect(done).rejects.toBe(reason)
    expect(t.aborts).toEqual([reason])
    expect(cancel.listenerCount).toBe(0)
  })

  it('rejects at once while the request waits for a connection, and aborts it at its start', async () => {
    const fake = fakeUndici()
    const t = target()
    const transport = await learnt(fake, t.dispatcher)
    const { ctx, cancel } = context()
    const done = transport(
      toHttpRequest('c', '/x', 'http://c/x', { dispatcher: t.dispatcher } as RequestInit),
      ctx,
    )
    const reason = new Error('closed')
    cancel.abort(reason)
    await expect(done).rejects.toBe(reason)
    t.start() // the connection came late
    expect(t.aborts).toHaveLength(1)
    expect(fake.pending[1]!.errors).toEqual([reason]) // undici's report of the abort is not passed on
  })

  it('fails a request fetch dispatches after the cancellation without passing it on', async () => {
    const fake = fakeUndici()
    const t = target()
    const transport = await learnt(fake, t.dispatcher)
    const { ctx, cancel } = context()
    const reason = new Error('gone')
    cancel.abort(reason)
    // The token was aborted before the attempt: fetch is still called, and its request fails
    // in `dispatch` without reaching a connection.
    await expect(
      transport(toHttpRequest('c', '/x', 'http://c/x', { dispatcher: t.dispatcher } as RequestInit), ctx),
    ).rejects.toBe(reason)
    expect(t.calls).toHaveLength(1) // the first, learning attempt only
    expect(fake.pending[1]!.errors).toEqual([reason])
  })

  it('rejects at once for a wrapper that calls fetch later, and fails its request when it does', async () => {
    const fake = fakeUndici()
    const t = target()
    let later: (() => void) | undefined
    const deferring = ((url: string, init: RequestInit) =>
      new Promise<Response>((resolve, reject) => {
        later = () => fake.fetchFn(url, init).then(resolve, reject)
      })) as typeof fetch
    const transport = fetchTransport(deferring)
    // Learn, through the wrapper, that fetch dispatches.
    const first = transport(
      toHttpRequest('c', '/x', 'http://c/x', { dispatcher: t.dispatcher } as RequestInit),
      context().ctx,
    )
    later!()
    fake.pending[0]!.answer(new Response(null))
    await first
    const { ctx, cancel } = context()
    const done = transport(
      toHttpRequest('c', '/x', 'http://c/x', { dispatcher: t.dispatcher } as RequestInit),
      ctx,
    )
    expect(fake.sent).toHaveLength(1) // not called yet
    const reason = new Error('too late')
    cancel.abort(reason)
    await expect(done).rejects.toBe(reason)
    later!()
    expect(t.calls).toHaveLength(1) // failed in dispatch, never passed on
    expect(fake.pending[1]!.errors).toEqual([reason])
    expect(cancel.listenerCount).toBe(0)
  })

  it('passes the controller form of handler on and aborts through its controller', async () => {
    const fake = fakeUndici({ controllerForm: true })
    const t = target()
    const transport = await learnt(fake, t.dispatcher)
    const { ctx, cancel } = context()
    const done = transport(
      toHttpRequest('c', '/x', 'http://c/x', { dispatcher: t.dispatcher } as RequestInit),
      ctx,
    )
    expect(typeof t.calls[1]!.handler.onRequestStart).toBe('function')
    t.start()
    cancel.abort('stop')
    await expect(done).rejects.toBe('stop')
    expect(t.aborts).toEqual(['stop'])
  })

  it('replaces a deadline header of any spelling in every form of headers undici takes', async () => {
    const forms: Any[] = [
      { a: 'b', 'X-Meshlet-Timeout-Ms': '9' },
      ['a', 'b', 'X-MESHLET-TIMEOUT-MS', '9'],
      new Map([
        ['a', 'b'],
        [DEADLINE_HEADER, '9'],
      ]),
      undefined,
    ]
    for (const headers of forms) {
      const fake = fakeUndici({ options: () => ({ path: '/x', headers }) })
      const t = target()
      const transport = await learnt(fake, t.dispatcher)
      const done = transport(
        toHttpRequest('c', '/x', 'http://c/x', { dispatcher: t.dispatcher } as RequestInit),
        context(1742.9).ctx,
      )
      const out = t.calls[1]!.options.headers
      if (Array.isArray(out)) expect(out).toEqual(['a', 'b', DEADLINE_HEADER, '742'])
      else if (headers === undefined) expect(out).toEqual({ [DEADLINE_HEADER]: '742' })
      else expect(out).toEqual({ a: 'b', [DEADLINE_HEADER]: '742' })
      fake.pending[1]!.answer(new Response(null))
      await done
    }
  })

  it('sends no header without a deadline, and reads isMockActive from the target', async () => {
    const fake = fakeUndici()
    const t = target()
    const transport = await learnt(fake, Object.assign(t.dispatcher, { isMockActive: true }))
    const done = transport(
      toHttpRequest('c', '/x', 'http://c/x', { dispatcher: t.dispatcher } as RequestInit),
      context(Number.POSITIVE_INFINITY).ctx,
    )
    expect(t.calls[1]!.options.headers).toEqual({ accept: '*/*' })
    expect(fake.sent[1]!.init.dispatcher.isMockActive).toBe(true)
    fake.pending[1]!.answer(new Response(null))
    await done
  })
})
