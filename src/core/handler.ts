/**
 * The pipeline's two shapes: a {@link Handler} turns a request into a response, a
 * {@link Middleware} adds one behaviour around the next handler (Finagle's `Service` and
 * `Filter`). A stack is middlewares composed around a transport handler.
 */
import type { Context } from './context.js'

/** An asynchronous function from a request to a response. */
export type Handler<Req, Res> = (req: Req, ctx: Context) => Promise<Res>

/** Adds one behaviour around the next handler. */
export type Middleware<Req, Res> = (next: Handler<Req, Res>) => Handler<Req, Res>

/**
 * Composes middlewares; the first listed is the outermost and sees the request first.
 *
 * Each stage may call `next` more than once (a retry does), but never twice with the same
 * {@link Context}: a stage that sends the request again must derive a new context for it
 * (`ctx.withAttempt(n)`), so that no state of one attempt leaks into the next. Calling `next`
 * twice with one context throws a `TypeError` naming the stage.
 *
 * A stage that waits before it calls `next` (a queue, a delay) passes `ctx.restarted()`, so
 * that the stages inside time the work from {@link Context.startedAt} without reading the clock
 * again; one that does not makes the limits inside start early, never late.
 *
 * @example
 * ```ts
 * import { compose, type Middleware } from 'meshlet'
 * const tag: Middleware<string, string> = (next) => async (req, ctx) => `[${await next(req, ctx)}]`
 * const handler = compose(tag, tag)(async (req) => req.toUpperCase())
 * ```
 */
export function compose<Req, Res>(...stages: Middleware<Req, Res>[]): Middleware<Req, Res> {
  return (next) => {
    let inner = guardNext(next, 'the handler')
    for (let i = stages.length - 1; i >= 0; i--) {
      const stage = stages[i]!
      inner = guardNext(stage(inner), stage.name || `stage ${i}`)
    }
    return inner
  }
}

/**
 * Chains middlewares like {@link compose}, without the double-`next` check: for stacks made
 * only of meshlet's own stages, which are tested to derive a context per attempt.
 * @internal
 */
export function chain<Req, Res>(
  stages: readonly Middleware<Req, Res>[],
  next: Handler<Req, Res>,
): Handler<Req, Res> {
  let inner = next
  for (let i = stages.length - 1; i >= 0; i--) inner = stages[i]!(inner)
  return inner
}

function guardNext<Req, Res>(handler: Handler<Req, Res>, name: string): Handler<Req, Res> {
  const seen = new WeakSet<Context>()
  return (req, ctx) => {
    if (seen.has(ctx)) {
      return Promise.reject(
        new TypeError(
          `${name} was called twice with the same Context: derive a new one (ctx.withAttempt(n)) for each attempt`,
        ),
      )
    }
    seen.add(ctx)
    return handler(req, ctx)
  }
}

/**
 * Runs `handler`; one that throws instead of rejecting gives a rejection, so that what wraps it
 * has one way to see a failure.
 * @internal
 */
export function send<Req, Res>(handler: Handler<Req, Res>, req: Req, ctx: Context): Promise<Res> {
  try {
    return handler(req, ctx)
  } catch (error) {
    return Promise.reject(error)
  }
}

/**
 * Sets the mark `key` on `handler`: what a stage tells the stage around it about itself
 * (`settlesOnCancel`, `joinsExits`). Each mark is read with its own constant symbol, not through
 * a shared reader: `Mesh.invoke` reads one per call, and a symbol passed as an argument made that
 * a keyed load, ~140 instructions a call more (counted with `npm run bench:instructions`).
 * @internal
 */
export function markHandler<Req, Res>(handler: Handler<Req, Res>, key: symbol): Handler<Req, Res> {
  ;(handler as unknown as Record<symbol, boolean>)[key] = true
  return handler
}

const SETTLES_ON_CANCEL = Symbol.for('meshlet.settlesOnCancel')

/**
 * Marks `handler` as one that rejects with the cancellation's reason as soon as its context's
 * `cancel` aborts (meshlet's fetch and gRPC transports do), so that the attempt timeout around it
 * can reject through the handler's own promise instead of racing it with one of its own.
 * @internal
 */
export function settlesOnCancel<Req, Res>(handler: Handler<Req, Res>): Handler<Req, Res> {
  return markHandler(handler, SETTLES_ON_CANCEL)
}

/** Whether `handler` was marked with {@link settlesOnCancel}. @internal */
export function isSettlingOnCancel(handler: Handler<unknown, unknown>): boolean {
  return (handler as unknown as Record<symbol, boolean | undefined>)[SETTLES_ON_CANCEL] === true
}
