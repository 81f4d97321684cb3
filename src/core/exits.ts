/**
 * The exits of one attempt: what the stages an attempt passed through do when it settles,
 * run by the one stage that owns the attempt's promise reaction. A stage whose work around the
 * next handler is synchronous (the circuit breaker records a verdict, the balancer gives back
 * its in-flight count) joins the open scope with {@link Exits.add} and returns the inner promise
 * as it is, instead of wrapping it in a `.then` of its own.
 *
 * Why: on Node 20 each promise layer costs ~140 ns and two closures per call (more under
 * `AsyncLocalStorage`, which tracing turns on), and a default stack had one per stage. With
 * exits, the stages between the retry loop and the attempt timeout share the retry stage's own
 * reaction (docs/decisions.md, D31). This is how Envoy's filters and gRPC's interceptor
 * listeners work: callbacks on one exchange, not a future per layer.
 *
 * The rule that keeps it correct: a scope is opened only around a handler marked with
 * {@link joinsExits}, and a joiner passes the scope on only to a handler that is marked too (else
 * it passes a context without it). So every stage between an attempt's owner and a joiner is a
 * joiner itself, none of which changes the outcome: each exit sees exactly the outcome the
 * joiner's own `.then` would have seen, in the same order (innermost first). A stage that
 * starts attempts of its own (retry, hedge) gives each a context without the scope
 * (`ctx.withAttempt`), so no attempt's exits run on another's outcome.
 *
 * A runner ({@link runsExits}) is a joiner that runs the scope it is given itself, in a reaction
 * it has anyway: the retry stage runs the call's scope (`Mesh.invoke`'s) once the call's outcome
 * is known, so the call needs no reaction of its own (D32).
 */
import type { Context } from './context.js'
import { type Handler, markHandler, send } from './handler.js'
import type { Classifier, Verdict } from './outcome.js'

/**
 * What a joiner runs when the attempt settles: its two values as given to {@link Exits.add},
 * whether the attempt succeeded, its value or error, the request, the owner's context (same
 * clock, random source and attempt), and the verdict of the scope's {@link Exits.judge} on the
 * outcome when the owner judged it before running the scope (else `undefined`). A hook may take
 * that verdict as its own only when it judges with the same classifier; it must not throw.
 */
export type ExitHook = (
  a: unknown,
  b: unknown,
  ok: boolean,
  result: unknown,
  req: unknown,
  ctx: Context,
  verdict?: Verdict,
) => void

/**
 * One attempt's exit hooks, run once, innermost (last added) first. The first two are kept in
 * fields of their own: a default stack adds two (breaker, balancer), and an array would grow a
 * 17-slot backing store on its first push.
 *
 * An attempt is judged once (D34): the owner that opened the scope with a classifier (the retry
 * stage, with the service's) judges the outcome before it runs the scope and passes the verdict
 * to every hook, and a joiner that judges with that same classifier (the breaker, passive
 * health) takes it instead of judging again. A joiner decides when it adds its hook, by
 * comparing its classifier with {@link Exits.judge}, so a stage built with another classifier
 * never reads a verdict that is not its own.
 */
export class Exits {
  /**
   * The classifier whose verdict {@link Exits.run} passes to the hooks when its owner gives one;
   * `undefined` when the owner does not judge (the hooks judge for themselves).
   */
  declare readonly judge: Classifier<never, never> | undefined
  declare private _f0: ExitHook | undefined
  declare private _a0: unknown
  declare private _b0: unknown
  declare private _f1: ExitHook | undefined
  declare private _a1: unknown
  declare private _b1: unknown
  declare private _more: unknown[] | undefined

  /** A scope whose owner judges with `judge` (see the class comment), or none. */
  constructor(judge?: Classifier<never, never>) {
    this.judge = judge
    this._f0 = undefined
    this._a0 = undefined
    this._b0 = undefined
    this._f1 = undefined
    this._a1 = undefined
    this._b1 = undefined
    this._more = undefined
  }

  /** Runs `hook(a, b, ...)` when the attempt settles. */
  add(hook: ExitHook, a: unknown, b: unknown): void {
    if (this._f0 === undefined) {
      this._f0 = hook
      this._a0 = a
      this._b0 = b
    } else if (this._f1 === undefined) {
      this._f1 = hook
      this._a1 = a
      this._b1 = b
    } else if (this._more === undefined) {
      this._more = [hook, a, b]
    } else {
      this._more.push(hook, a, b)
    }
  }

  /**
   * Runs every hook once, the last added first, then forgets them (a second run does nothing).
   * A hook that throws (a bug: hooks must not) does not stop the others, which give back what
   * they hold as their own `.then` would have; the first error is thrown after the last hook.
   * `verdict` is {@link Exits.judge}'s on this outcome, when the owner judged it first.
   */
  run(ok: boolean, result: unknown, req: unknown, ctx: Context, verdict?: Verdict): void {
    let failure: { error: unknown } | undefined
    const more = this._more
    if (more !== undefined) {
      this._more = undefined
      for (let i = more.length - 3; i >= 0; i -= 3) {
        try {
          ;(more[i] as ExitHook)(more[i + 1], more[i + 2], ok, result, req, ctx, verdict)
        } catch (error) {
          failure ??= { error }
        }
      }
    }
    const f1 = this._f1
    if (f1 !== undefined) {
      this._f1 = undefined
      try {
        f1(this._a1, this._b1, ok, result, req, ctx, verdict)
      } catch (error) {
        failure ??= { error }
      }
      this._a1 = undefined
      this._b1 = undefined
    }
    const f0 = this._f0
    if (f0 !== undefined) {
      this._f0 = undefined
      try {
        f0(this._a0, this._b0, ok, result, req, ctx, verdict)
      } catch (error) {
        failure ??= { error }
      }
      this._a0 = undefined
      this._b0 = undefined
    }
    if (failure !== undefined) throw failure.error
  }
}

const JOINS_EXITS = Symbol.for('meshlet.joinsExits')

/**
 * Marks `handler` as a joiner: a stage that, given a context with an open scope
 * (`ctx.exits`), adds its exit there and returns its inner promise unchanged. Only meshlet's
 * own stages are marked; an unmarked handler (a user's stage, `compose`'s guard, the hedge) is
 * never given a scope, so it sees nothing of this mechanism.
 * @internal
 */
export function joinsExits<Req, Res>(handler: Handler<Req, Res>): Handler<Req, Res> {
  return markHandler(handler, JOINS_EXITS)
}

/** Whether `handler` was marked with {@link joinsExits}. @internal */
export function isJoiningExits(handler: Handler<unknown, unknown>): boolean {
  return (handler as unknown as Record<symbol, boolean | undefined>)[JOINS_EXITS] === true
}

const RUNS_EXITS = Symbol.for('meshlet.runsExits')

/**
 * Marks `handler` as a runner: a joiner (it is marked {@link joinsExits} too) that, given a
 * context with an open scope, runs that scope's hooks itself, once, with exactly the outcome its
 * returned promise settles with, before that promise settles, on every path (early rejections
 * included). The retry stage is one: it has a reaction per call anyway, so the scope of the call
 * (`Mesh.invoke`'s) is run there, and `invoke` needs no reaction of its own (decision D32). A
 * stage that always calls its next handler and passes the scope on unchanged (the deadline), or
 * runs the scope itself on the paths where it does not (the bulkhead's queue), is a runner when
 * its next handler is.
 * @internal
 */
export function runsExits<Req, Res>(handler: Handler<Req, Res>): Handler<Req, Res> {
  markHandler(handler, JOINS_EXITS)
  return markHandler(handler, RUNS_EXITS)
}

/** Whether `handler` was marked with {@link runsExits}. @internal */
export function isRunningExits(handler: Handler<unknown, unknown>): boolean {
  return (handler as unknown as Record<symbol, boolean | undefined>)[RUNS_EXITS] === true
}

/**
 * Runs `next` in the scope `exits` that the caller opened (`ctx.exits === exits`), and the exits
 * once it settles: the one reaction of a scope's owner that has nothing else to do in it.
 * @internal
 */
export function runScoped<Req, Res>(
  next: Handler<Req, Res>,
  req: Req,
  ctx: Context,
  exits: Exits,
): Promise<Res> {
  return settleScope(send(next, req, ctx), exits, req, ctx)
}

/**
 * `promise`, with the scope `exits` run once it settles (with its outcome) and before what this
 * returns settles: how a runner keeps its promise on a path that does not pass the scope on.
 * @internal
 */
export function settleScope<Res>(
  promise: Promise<Res>,
  exits: Exits,
  req: unknown,
  ctx: Context,
): Promise<Res> {
  return promise.then(
    (value) => {
      exits.run(true, value, req, ctx)
      return value
    },
    (error: unknown) => {
      exits.run(false, error, req, ctx)
      throw error
    },
  )
}
