/** Shared fixtures for stage unit tests: a fake protocol and a context on a manual clock. */
import { Cancellation } from '../core/cancel.js'
import { Context } from '../core/context.js'
import type { Outcome, Protocol } from '../core/outcome.js'
import { seededRandom } from '../core/random.js'
import { ManualClock } from '../testing/manual-clock.js'

/** A response of the fake protocol. */
export interface FakeRes {
  readonly status: number
  readonly retryAfter?: number
}

/** A request of the fake protocol. */
export interface FakeReq {
  readonly replayable: boolean
}

export const fakeProtocol: Protocol<FakeReq, FakeRes> & { discarded: FakeRes[] } = {
  discarded: [],
  canReplay: (req) => req.replayable,
  pushback: (o: Outcome<FakeRes>) => (o.ok ? o.value.retryAfter : undefined),
  discard(res) {
    this.discarded.push(res)
  },
}

export const classifyFake = (_req: FakeReq, o: Outcome<FakeRes>) =>
  o.ok ? (o.value.status >= 500 ? ('retryable' as const) : ('success' as const)) : ('retryable' as const)

export function fixture(seed = 1) {
  const clock = new ManualClock()
  const cancel = new Cancellation()
  const ctx = Context.create({ clock, random: seededRandom(seed), cancel })
  return { clock, cancel, ctx }
}
