/**
 * Per-call state, passed inward through the pipeline. A stage derives a new {@link Context} for
 * what it changes and never mutates the one it was given, so a retry cannot see state left by
 * the previous attempt. Typed keys (as in Connect-ES) replace stringly-typed bags.
 */
import type { Cancellation } from './cancel.js'
import type { Clock } from './clock.js'
import type { Exits } from './exits.js'
import type { Random } from './random.js'

/** A typed slot in a {@link Context}; create one per concern with {@link createContextKey}. */
export interface ContextKey<T> {
  /** A name for debugging. */
  readonly name: string
  /** What {@link Context.get} returns when the key was never set. */
  readonly defaultValue: T
}

/** Creates a typed context key. Keys are compared by identity, so create each one once. */
export function createContextKey<T>(name: string, defaultValue: T): ContextKey<T> {
  return Object.freeze({ name, defaultValue })
}

interface Entry {
  readonly key: ContextKey<unknown>
  readonly value: unknown
  readonly parent: Entry | undefined
}

/** The fields of a root context. */
export interface ContextInit {
  /** The time source. */
  readonly clock: Clock
  /** The random source. */
  readonly random: Random
  /** Cancels the whole call: the caller's abort, or the mesh closing. */
  readonly cancel: Cancellation
  /** Absolute time on `clock` after which the call fails. Default `Infinity`. */
  readonly deadline?: number
  /** The caller's own signal, when it gave one. */
  readonly signal?: AbortSignal | undefined
  /** When the call started, on `clock`. Default: `clock.now()`, read once here. */
  readonly startedAt?: number
}

/**
 * Per-call state; see the module comment. Every property is assigned in the constructor (and
 * declared with `declare`): a call builds four of these, and class fields, or a `#` field beside
 * other properties, made each cost ~80 instructions more on Node 20 (docs/decisions.md, D35).
 */
export class Context {
  /** Absolute time on {@link clock} (ms) after which the call fails; `Infinity` when none. */
  declare readonly deadline: number
  /** 0 for the first try, then 1, 2, ... for retries and hedges. */
  declare readonly attempt: number
  /** The time source. */
  declare readonly clock: Clock
  /** The random source. */
  declare readonly random: Random
  /** Cancels the work of this context: the call's, or one attempt's. */
  declare readonly cancel: Cancellation
  /** The caller's own signal, when it gave one (read it, never abort it). */
  declare readonly signal: AbortSignal | undefined
  /**
   * When this call, or this attempt of it, started (ms on {@link clock}). The clock is read once
   * by whatever starts the work (the root context, a retry or hedge via {@link withAttempt}, a
   * stage that waited via {@link restarted}); stages that time the call from its start (the
   * deadline, the attempt timeout, the breaker, the budget) use this instead of another read.
   */
  declare readonly startedAt: number
  /**
   * Whether the deadline is the mesh's own timeout alone (no caller, inherited or outer deadline
   * was set): it ends the call here, and a transport that honours the mark (gRPC, whose
   * `grpc-timeout` every server enforces) does not write it upstream (decision D27). `false`
   * for every other deadline, and when there is none.
   */
  declare readonly localDeadline: boolean
  /**
   * The open scope of this attempt's exit hooks, or `undefined` when none is open: set by the
   * stage that owns the attempt's reaction, for the stages inside it that join (see
   * `core/exits.ts`). {@link with}, {@link withDeadline} and {@link withCancel} keep it;
   * {@link withAttempt} and {@link restarted}, which start other work, do not.
   * @internal
   */
  declare readonly exits: Exits | undefined
  declare private readonly _values: Entry | undefined

  private constructor(
    clock: Clock,
    random: Random,
    deadline: number,
    attempt: number,
    cancel: Cancellation,
    signal: AbortSignal | undefined,
    values: Entry | undefined,
    startedAt: number,
    localDeadline: boolean,
    exits: Exits | undefined,
  ) {
    this.clock = clock
    this.random = random
    this.deadline = deadline
    this.attempt = attempt
    this.cancel = cancel
    this.signal = signal
    this._values = values
    this.startedAt = startedAt
    this.localDeadline = localDeadline
    this.exits = exits
  }

  /**
   * A root context for one call. Make one per call, when it starts: its {@link startedAt} is
   * read here, and the stages time the call from it.
   */
  static create(init: ContextInit): Context {
    return new Context(
      init.clock,
      init.random,
      init.deadline ?? Number.POSITIVE_INFINITY,
      0,
      init.cancel,
      init.signal,
      undefined,
      init.startedAt ?? init.clock.now(),
      false,
      undefined,
    )
  }

  /**
   * A root context for one call that starts now, with no deadline yet: {@link create} without
   * the options object (what `Mesh.invoke` makes per call), in the call's scope of exit hooks
   * `exits` when its owner opened one.
   * @internal
   */
  static root(
    clock: Clock,
    random: Random,
    cancel: Cancellation,
    signal: AbortSignal | undefined,
    exits?: Exits,
  ): Context {
    return new Context(
      clock,
      random,
      Number.POSITIVE_INFINITY,
      0,
      cancel,
      signal,
      undefined,
      clock.now(),
      false,
      exits,
    )
  }

  /** The value stored under `key`, or the key's default. */
  get<T>(key: ContextKey<T>): T {
    for (let e = this._values; e !== undefined; e = e.parent) {
      if (e.key === key) return e.value as T
    }
    return key.defaultValue
  }

  /** A copy with `key` set to `value`. */
  with<T>(key: ContextKey<T>, value: T): Context {
    return this.withEntry(key, value, this.exits)
  }

  /**
   * {@link with}, with `exits` as the copy's scope of exit hooks: for a joiner that passes its
   * scope on only to a handler that joins too (core/exits.ts).
   * @internal
   */
  withEntry<T>(key: ContextKey<T>, value: T, exits: Exits | undefined): Context {
    return new Context(
      this.clock,
      this.random,
      this.deadline,
      this.attempt,
      this.cancel,
      this.signal,
      {
        key: key as ContextKey<unknown>,
        value,
        parent: this._values,
      },
      this.startedAt,
      this.localDeadline,
      exits,
    )
  }

  /**
   * A copy with another deadline; `local` marks it as the mesh's own timeout alone (see
   * {@link localDeadline}). Default `false`.
   */
  withDeadline(deadline: number, local = false): Context {
    return new Context(
      this.clock,
      this.random,
      deadline,
      this.attempt,
      this.cancel,
      this.signal,
      this._values,
      this.startedAt,
      local,
      this.exits,
    )
  }

  /**
   * A copy for attempt number `attempt`, cancelled by `cancel`, which starts now (one clock
   * read), with `exits` as its scope of exit hooks (default none: a new attempt's owner opens one).
   */
  withAttempt(attempt: number, cancel: Cancellation = this.cancel, exits?: Exits): Context {
    return new Context(
      this.clock,
      this.random,
      this.deadline,
      attempt,
      cancel,
      this.signal,
      this._values,
      this.clock.now(),
      this.localDeadline,
      exits,
    )
  }

  /**
   * A copy that starts now (one clock read): what a stage passes on after it waited (a queue,
   * an injected delay), so that the stages inside time the work from when it really starts. A
   * stage that waits and passes the old context on makes the limits inside start early, never late.
   */
  restarted(): Context {
    return this.withAttempt(this.attempt)
  }

  /** A copy cancelled by `cancel` (a child of this context's token). */
  withCancel(cancel: Cancellation): Context {
    return new Context(
      this.clock,
      this.random,
      this.deadline,
      this.attempt,
      cancel,
      this.signal,
      this._values,
      this.startedAt,
      this.localDeadline,
      this.exits,
    )
  }

  /** A copy whose scope of exit hooks is `exits` (`undefined`: none). @internal */
  withExits(exits: Exits | undefined): Context {
    return new Context(
      this.clock,
      this.random,
      this.deadline,
      this.attempt,
      this.cancel,
      this.signal,
      this._values,
      this.startedAt,
      this.localDeadline,
      exits,
    )
  }

  /** Milliseconds left before the deadline (`Infinity` when none; may be negative). */
  remaining(): number {
    return this.deadline === Number.POSITIVE_INFINITY ? this.deadline : this.deadline - this.clock.now()
  }

  /**
   * What `JSON.stringify` shows of a context: its public properties, never its entries (read
   * those with {@link get}). The entries sit in a plain property since D35, and an application's
   * entries may hold what a log must not (a token) or what JSON cannot write (a `BigInt`).
   */
  toJSON(): Record<string, unknown> {
    const { _values, ...shown } = this
    return shown
  }

  /** What `util.inspect` (and so `console.log`) shows: the same as {@link toJSON}. @internal */
  [Symbol.for('nodejs.util.inspect.custom')](
    _depth: number,
    options: object,
    inspect: (value: unknown, options: object) => string,
  ): string {
    return `Context ${inspect(this.toJSON(), options)}`
  }
}
