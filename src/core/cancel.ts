/**
 * A cheap cancellation token. An `AbortController` costs ~3 us to create and ~7 us to abort on
 * Node 20 (docs/decisions.md); most calls are never cancelled, so stages pass this token instead,
 * and only a transport that needs a real `AbortSignal` makes one (the fetch transport links its
 * own controller with {@link onAbort}; {@link signal} does the same for other APIs).
 */

import type { Clock, TimerHandle } from './clock.js'

/** Called with the reason when a {@link Cancellation} aborts. */
export type AbortListener = (reason: unknown) => void

/** A one-shot, hierarchical cancellation: aborting a parent aborts its children. */
export class Cancellation {
  // Fields are assigned in the constructor, not declared with initializers: V8 (Node 20) builds
  // a subclass instance (every call's token is one) ~2x slower when its base class has field
  // initializers, ~70 ns against ~35 here (docs/decisions.md, D33).
  declare private _aborted: boolean
  declare private _reason: unknown
  // The first listener has a field of its own: most tokens only ever hold one at a time, and an
  // array for it would be an allocation per call.
  declare private _first: AbortListener | undefined
  declare private _rest: AbortListener[] | undefined
  declare private _signal: AbortSignal | undefined

  constructor() {
    this._aborted = false
    this._reason = undefined
    this._first = undefined
    this._rest = undefined
    this._signal = undefined
  }

  /** True once {@link abort} has run (here or on a parent). */
  get aborted(): boolean {
    return this._aborted
  }

  /** Why it was aborted; `undefined` until then. */
  get reason(): unknown {
    return this._reason
  }

  /** Aborts with `reason`, running every listener once, in the order they were added; later calls do nothing. */
  abort(reason: unknown): void {
    if (this._aborted) return
    this._aborted = true
    this._reason = reason
    const first = this._first
    const rest = this._rest
    this._first = undefined
    this._rest = undefined
    if (first !== undefined) first(reason)
    if (rest !== undefined) for (const fn of rest) fn(reason)
  }

  /**
   * Runs `fn` once when aborted (at once if already aborted). Returns a function that removes
   * the listener; call it when the work finishes so that long-lived tokens hold nothing.
   */
  onAbort(fn: AbortListener): () => void {
    if (this._aborted) {
      fn(this._reason)
      return noop
    }
    this.listen(fn)
    return () => this.off(fn)
  }

  /**
   * {@link onAbort} without the function that removes the listener, for code that keeps `fn`
   * and removes it with {@link off} (a transport's attempt does, once per call).
   */
  listen(fn: AbortListener): void {
    if (this._aborted) {
      fn(this._reason)
      return
    }
    // Into the field only while it keeps the order: no later listener waits in the array.
    if (this._first === undefined && (this._rest === undefined || this._rest.length === 0)) this._first = fn
    else if (this._rest === undefined) this._rest = [fn]
    else this._rest.push(fn)
  }

  /** Removes the listener `fn` (one registration of it); nothing when it is not there. */
  off(fn: AbortListener): void {
    if (this._first === fn) {
      this._first = undefined
      return
    }
    const list = this._rest
    if (list === undefined) return
    const i = list.indexOf(fn)
    if (i < 0) return
    // Shifted by hand: `splice` would allocate the array of what it removed.
    for (let j = i + 1; j < list.length; j++) list[j - 1] = list[j]!
    list.length--
  }

  /** The number of listeners still registered (for leak tests). */
  get listenerCount(): number {
    return (this._first === undefined ? 0 : 1) + (this._rest?.length ?? 0)
  }

  /**
   * A child token aborted with this one. Call `release()` on the result when its work is done,
   * which detaches it from this parent.
   */
  child(): ChildCancellation {
    const child = new ChildCancellation()
    if (this._aborted) child.abort(this._reason)
    else child.follow(this)
    return child
  }

  /** A real `AbortSignal` that follows this token, created on first use and then cached. */
  signal(): AbortSignal {
    if (this._signal) return this._signal
    if (this._aborted) {
      this._signal = AbortSignal.abort(this._reason)
      return this._signal
    }
    const controller = new AbortController()
    this._signal = controller.signal
    this.onAbort((reason) => controller.abort(reason))
    return this._signal
  }

  /** Throws the reason when aborted. */
  throwIfAborted(): void {
    if (this._aborted) throw this._reason
  }
}

/**
 * The token of a whole call, kept by an owner that calls {@link finish} once the call has
 * settled (`Mesh.invoke` does): it can hold the call's one deadline timer, which the attempt
 * timeout arms at the first attempt and every later attempt shares, so that no attempt needs a
 * clean-up step of its own (decision D28). `finish` clears it.
 */
export class CallCancellation extends Cancellation {
  declare private _timer: TimerHandle | undefined
  declare private _clock: Clock | undefined
  declare private _timerAt: number

  constructor() {
    super()
    this._timer = undefined
    this._clock = undefined
    this._timerAt = Number.NaN
  }

  /** When the held deadline timer fires (ms on its clock), or `NaN` when none is held. */
  get timerAt(): number {
    return this._timerAt
  }

  /**
   * Keeps `timer`, armed on `clock` for `at`, until {@link finish}: one per call, so the caller
   * holds one only while {@link timerAt} is `NaN` (a second is refused with an error).
   */
  holdTimer(clock: Clock, timer: TimerHandle, at: number): void {
    if (this._timer !== undefined) throw new Error('meshlet: this call already holds a deadline timer')
    this._timer = timer
    this._clock = clock
    this._timerAt = at
  }

  /** The call has settled: clears the deadline timer it holds, if any. */
  finish(): void {
    const timer = this._timer
    if (timer === undefined) return
    this._timer = undefined
    this._timerAt = Number.NaN
    this._clock!.clearTimer(timer)
  }
}

/** A {@link Cancellation} linked to a parent; {@link release} unlinks it. */
export class ChildCancellation extends Cancellation {
  declare private _parent: Cancellation | undefined
  declare private _listener: AbortListener | undefined

  constructor() {
    super()
    this._parent = undefined
    this._listener = undefined
  }

  /** @internal Aborts this token with `parent` until {@link release} (what `parent.child()` does). */
  follow(parent: Cancellation): void {
    const listener: AbortListener = (reason) => this.abort(reason)
    this._parent = parent
    this._listener = listener
    parent.listen(listener)
  }

  /** Unlinks this token from its parent. */
  release(): void {
    const parent = this._parent
    if (parent === undefined) return
    parent.off(this._listener!)
    this._parent = undefined
    this._listener = undefined
  }
}

/** A token that never aborts, for calls that nothing can cancel. */
export const neverCancelled: Cancellation = new (class extends Cancellation {
  override abort(): void {}
  override onAbort(): () => void {
    return noop
  }
  override listen(): void {}
  override child(): ChildCancellation {
    return new ChildCancellation()
  }
})()

function noop(): void {}
