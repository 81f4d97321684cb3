/**
 * The bulkhead: at most `max` calls in flight to one destination, up to `queue` more waiting in
 * FIFO order for a permit until `min(queueTimeout, deadline)`, and every call beyond that failed
 * at once with {@link BulkheadFullError}.
 *
 * Why: one slow dependency must not take every socket, pending promise and buffer of the
 * process, and with them the calls to every healthy dependency (Hystrix's semaphore isolation;
 * Envoy's `max_requests` and `max_pending_requests`). Refusing at once when full is the point:
 * the caller learns in microseconds that the dependency is saturated, instead of at its
 * deadline, and can fall back or shed load.
 *
 * Where: between the deadline and retry, so one call holds one permit for all its attempts. A
 * retry never queues again behind fresh calls, retries cannot multiply the load past `max`, and
 * the wait for a permit is bounded by the same deadline as the attempts.
 *
 * Cost: with a permit free, a call costs one `then` on the inner promise with two handlers that
 * every call shares: no closure, no timer, no object of ours. A queued call allocates its waiter
 * and arms one timer on `ctx.clock` (none when neither `queueTimeout` nor the deadline is
 * finite), cleared when it gets its permit. An adaptive limit ({@link Limiter}) needs each
 * call's admission time, so its calls allocate two small closures.
 */
import type { TimerHandle } from '../../core/clock.js'
import type { Context } from '../../core/context.js'
import { BulkheadFullError, isMeshError } from '../../core/errors.js'
import type { Events } from '../../core/events.js'
import {
  type ExitHook,
  isJoiningExits,
  isRunningExits,
  joinsExits,
  runsExits,
  settleScope,
} from '../../core/exits.js'
import { type Handler, type Middleware, send } from '../../core/handler.js'
import { DEFAULT_INITIAL_LIMIT, gradient2Limit, type Limiter, vegasLimit } from './adaptive.js'

/** Options of {@link bulkhead}; the defaults mirror the config's `concurrency`. */
export interface BulkheadOptions {
  /**
   * Calls in flight at once; `0` for no limit (the stage is then left out of the path, unless
   * `adaptive` is set). With `adaptive`, the initial limit (`0`: 20). Default `0`.
   */
  readonly max?: number
  /** Calls that may wait for a permit when the limit is reached; the rest fail at once. Default `0`. */
  readonly queue?: number
  /**
   * The longest wait in the queue in ms; the call's deadline also bounds it. `0`: no wait (a
   * call that finds no permit fails at once); `Infinity`: only the deadline and cancellation end
   * a wait. Default `1000`.
   */
  readonly queueTimeout?: number
  /**
   * Adapt the limit to latency: `'gradient2'` ({@link gradient2Limit}) or `'vegas'`
   * ({@link vegasLimit}) with Netflix's defaults, starting at `max` (or 20) and never above
   * `maxLimit`; or any {@link Limiter}. Default none (the fixed limit `max`).
   */
  readonly adaptive?: 'gradient2' | 'vegas' | Limiter | undefined
  /** The ceiling of a named adaptive limit. Default `200`. */
  readonly maxLimit?: number
  /** Named in errors and events. */
  readonly service?: string | undefined
  /** Where `bulkhead-full` events go. */
  readonly events?: Events | undefined
}

const QUEUED = 0
const GRANTED = 1
const GONE = 2

/** A call waiting for a permit: a node of the intrusive FIFO list. */
interface Waiter<Req, Res> {
  readonly next: Handler<Req, Res>
  readonly req: Req
  readonly ctx: Context
  readonly resolve: (value: Promise<Res>) => void
  readonly reject: (error: unknown) => void
  readonly since: number
  timer: TimerHandle | undefined
  unlink: () => void
  older: Waiter<Req, Res> | undefined
  newer: Waiter<Req, Res> | undefined
  state: typeof QUEUED | typeof GRANTED | typeof GONE
}

/**
 * Limits the calls in flight through this stage; see the module comment. A refused call
 * rejects with {@link BulkheadFullError} (code `BULKHEAD_FULL`) and emits `bulkhead-full`
 * (`queued: false` when refused at once, `true` when its wait ran out). A call cancelled while
 * queued leaves the queue and rejects with the cancellation's reason. Each admitted call holds
 * one permit until it settles, and a freed permit goes to the oldest waiter.
 *
 * The permits belong to the value this returns: wrap one `next` with it per destination, and
 * reuse it (rather than calling `bulkhead()` again) to keep counting calls still in flight.
 *
 * @example
 * ```ts
 * import { bulkhead, compose } from 'meshlet'
 * const limited = compose(bulkhead<string, string>({ max: 10, queue: 5, queueTimeout: 250 }))(
 *   async (req) => req,
 * )
 * ```
 */
export function bulkhead<Req, Res>(options: BulkheadOptions = {}): Middleware<Req, Res> {
  const max = options.max !== undefined && options.max > 0 ? Math.floor(options.max) : 0
  const limiter = limiterFor(options.adaptive, max, options.maxLimit)
  if (limiter === undefined && max === 0) return (next) => next
  const capacity = Math.max(0, options.queue ?? 0)
  const queueTimeout = options.queueTimeout ?? 1000
  const { service, events } = options

  let inflight = 0
  let queued = 0
  let oldest: Waiter<Req, Res> | undefined
  let newest: Waiter<Req, Res> | undefined

  const release = (): void => {
    inflight--
    if (oldest !== undefined) drain()
  }
  // Shared by every call admitted under a fixed limit: the permit needs no per-call state.
  const passValue = (value: Res): Res => {
    release()
    return value
  }
  const passError = (error: unknown): never => {
    release()
    throw error
  }

  // A call admitted in the call's open scope (Mesh.invoke's) gives its permit back there.
  const releaseExit: ExitHook = release

  function admit(next: Handler<Req, Res>, req: Req, ctx: Context, passOn: boolean): Promise<Res> {
    inflight++
    const exits = ctx.exits
    // The scope goes on only to a handler that joins it (core/exits.ts); retry does not.
    const inner = exits === undefined || passOn ? ctx : ctx.withExits(undefined)
    if (limiter !== undefined) return admitMeasured(limiter, next, req, inner)
    if (exits !== undefined) {
      exits.add(releaseExit, undefined, undefined)
      return send(next, req, inner)
    }
    return send(next, req, inner).then(passValue, passError)
  }

  function admitMeasured(lim: Limiter, next: Handler<Req, Res>, req: Req, ctx: Context): Promise<Res> {
    const { clock } = ctx
    const start = ctx.startedAt
    const admittedWith = inflight
    let inner: Promise<Res>
    try {
      inner = next(req, ctx)
    } catch (error) {
      release()
      return Promise.reject(error)
    }
    return inner.then(
      (value) => {
        try {
          const now = clock.now()
          lim.onSample(now - start, admittedWith, false, now)
        } finally {
          release()
        }
        return value
      },
      (error: unknown) => {
        try {
          // A timeout is the loss signal (Netflix's onDropped); any other failure measured no
          // service time (a refused connection is fast) and is left out (onIgnore).
          if (isMeshError(error, 'TIMEOUT')) {
            const now = clock.now()
            lim.onSample(now - start, admittedWith, true, now)
          }
        } finally {
          release()
        }
        throw error
      },
    )
  }

  function drain(): void {
    while (oldest !== undefined && inflight < (limiter === undefined ? max : limiter.limit)) {
      const w = oldest
      dequeue(w)
      w.state = GRANTED
      if (w.timer !== undefined) w.ctx.clock.clearTimer(w.timer)
      w.unlink()
      // It waited: the stages inside time the call from now.
      w.resolve(admit(w.next, w.req, w.ctx.restarted(), false))
    }
  }

  function dequeue(w: Waiter<Req, Res>): void {
    if (w.older === undefined) oldest = w.newer
    else w.older.newer = w.newer
    if (w.newer === undefined) newest = w.older
    else w.newer.older = w.older
    w.older = undefined
    w.newer = undefined
    queued--
  }

  function refuse(detail: string, wasQueued: boolean): BulkheadFullError {
    if (events?.has('bulkhead-full'))
      events.emit('bulkhead-full', { service: service ?? '', queued: wasQueued })
    return new BulkheadFullError(service, detail)
  }

  function expire(w: Waiter<Req, Res>, byDeadline: boolean): void {
    if (w.state !== QUEUED) return
    dequeue(w)
    w.state = GONE
    w.unlink()
    const waited = Math.round(w.ctx.clock.now() - w.since)
    w.reject(
      refuse(
        byDeadline
          ? `waited ${waited}ms in the queue until the call's deadline`
          : `waited ${waited}ms in the queue (queueTimeout)`,
        true,
      ),
    )
  }

  function cancelled(w: Waiter<Req, Res>, reason: unknown): void {
    // A listener may still run after the grant when the abort had already collected it.
    if (w.state !== QUEUED) return
    dequeue(w)
    w.state = GONE
    if (w.timer !== undefined) w.ctx.clock.clearTimer(w.timer)
    w.reject(reason)
  }

  function wait(next: Handler<Req, Res>, req: Req, ctx: Context): Promise<Res> {
    if (queued >= capacity) {
      const limit = limiter === undefined ? max : limiter.limit
      return Promise.reject(
        refuse(`${inflight} calls in flight (limit ${limit}) and ${queued} queued`, false),
      )
    }
    if (ctx.cancel.aborted) return Promise.reject(ctx.cancel.reason)
    const now = ctx.clock.now()
    const byDeadline = ctx.deadline < now + queueTimeout
    const until = byDeadline ? ctx.deadline : now + queueTimeout
    if (!(until > now)) {
      const why = byDeadline ? "the call's deadline has passed" : 'no wait allowed (queueTimeout 0)'
      return Promise.reject(refuse(`no permit free and ${why}`, false))
    }
    return new Promise<Res>((resolve, reject) => {
      const w: Waiter<Req, Res> = {
        next,
        req,
        ctx,
        resolve,
        reject,
        since: now,
        timer: undefined,
        unlink: noop,
        older: newest,
        newer: undefined,
        state: QUEUED,
      }
      if (newest === undefined) oldest = w
      else newest.newer = w
      newest = w
      queued++
      if (until !== Number.POSITIVE_INFINITY)
        w.timer = ctx.clock.setTimer(() => expire(w, byDeadline), until - now)
      w.unlink = ctx.cancel.onAbort((reason) => cancelled(w, reason))
    })
  }

  return (next) => {
    const passOn = isJoiningExits(next as Handler<unknown, unknown>)
    // Around a runner (retry), so is the bulkhead: an admitted call passes the scope on to it,
    // and a refused or queued one runs the scope here, in a reaction of its own (D32).
    const runner = isRunningExits(next as Handler<unknown, unknown>)
    const stage = function bulkheadStage(req: Req, ctx: Context): Promise<Res> {
      if (oldest === undefined && inflight < (limiter === undefined ? max : limiter.limit)) {
        return admit(next, req, ctx, passOn)
      }
      const exits = ctx.exits
      if (runner && exits !== undefined)
        return settleScope(wait(next, req, ctx.withExits(undefined)), exits, req, ctx)
      return wait(next, req, ctx)
    }
    return runner ? runsExits(stage) : joinsExits(stage)
  }
}

function limiterFor(
  adaptive: BulkheadOptions['adaptive'],
  max: number,
  maxLimit: number | undefined,
): Limiter | undefined {
  if (adaptive === undefined) return undefined
  if (typeof adaptive === 'object') return adaptive
  const init = { initialLimit: max > 0 ? max : DEFAULT_INITIAL_LIMIT, ...(maxLimit ? { maxLimit } : {}) }
  return adaptive === 'gradient2' ? gradient2Limit(init) : vegasLimit(init)
}

function noop(): void {}
