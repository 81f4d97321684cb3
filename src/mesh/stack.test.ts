import { describe, expect, it } from 'vitest'
import type { Context } from '../core/context.js'
import { Exits, isJoiningExits, isRunningExits, joinsExits, runsExits } from '../core/exits.js'
import { chain, compose, type Handler, type Middleware } from '../core/handler.js'
import type { Classifier, Verdict } from '../core/outcome.js'
import { seededRandom } from '../core/random.js'
import { balancer } from '../stages/balancer/balancer.js'
import { Endpoint } from '../stages/balancer/endpoint.js'
import { EndpointHealth } from '../stages/balancer/health.js'
import { OUTLIER_DETECTION_DEFAULTS } from '../stages/balancer/outlier-detection.js'
import { roundRobin } from '../stages/balancer/strategies.js'
import { bulkhead } from '../stages/bulkhead/bulkhead.js'
import { CircuitBreaker, type Permit } from '../stages/circuit-breaker/breaker.js'
import { circuitBreaker } from '../stages/circuit-breaker/circuit-breaker.js'
import { deadline } from '../stages/deadline/deadline.js'
import { constantBackoff } from '../stages/retry/backoff.js'
import { hedge } from '../stages/retry/hedge.js'
import { retry } from '../stages/retry/retry.js'
import { classifyFake, type FakeReq, type FakeRes, fakeProtocol, fixture } from '../stages/test-kit.js'
import { ManualClock } from '../testing/manual-clock.js'
import { createMesh } from './mesh.js'
import { withMesh } from './with-mesh.js'

// The stages between the retry loop and the transport share one reaction per attempt through
// its exits (core/exits.ts). These tests pin what each stage sees, as if each had its own.

const REQ: FakeReq = { replayable: true }

/** A breaker that logs every verdict it records, with the attempt's duration. */
class LoggingBreaker extends CircuitBreaker {
  readonly log: Array<[Verdict, number]> = []
  override record(permit: Permit, verdict: Verdict, duration: number, now: number): void {
    this.log.push([verdict, duration])
    super.record(permit, verdict, duration, now)
  }
}

function parts(count = 2) {
  const endpoints = Array.from(
    { length: count },
    (_, i) => new Endpoint({ address: `http://10.0.0.${i}:80` }),
  )
  // A rate window (that never opens) makes the breaker take every attempt's duration.
  const breaker = new LoggingBreaker({
    consecutiveFailures: 100,
    failureRateThreshold: 100,
    minimumCalls: 1000,
  })
  const stages = {
    retry: retry<FakeReq, FakeRes>({
      attempts: 3,
      backoff: constantBackoff(0),
      classify: classifyFake,
      protocol: fakeProtocol,
    }),
    breaker: circuitBreaker<FakeReq, FakeRes>({ breaker, classify: classifyFake }),
    balancer: balancer<FakeReq, FakeRes>({ service: 'svc', endpoints, strategy: roundRobin() }),
  }
  return { endpoints, breaker, stages }
}

/** A transport answering each attempt from `script` after `ms` of the manual clock, noting each pick's pending count. */
function scripted(script: Array<number | Error>, clock: { sleep(ms: number): Promise<void> }, ms = 10) {
  let i = 0
  const handler: Handler<FakeReq, FakeRes> = async () => {
    const next = script[i++] ?? 200
    await clock.sleep(ms)
    if (next instanceof Error) throw next
    return { status: next }
  }
  return handler
}

const pending = (endpoints: Endpoint[]) => endpoints.map((e) => e.pending)

describe('attempt exits in the stack', () => {
  it('the breaker records each attempt of a retried call with its own outcome and duration, and the counts return to zero', async () => {
    const { clock, ctx } = fixture()
    const { endpoints, breaker, stages } = parts()
    const handler = chain(
      [stages.retry, stages.breaker, stages.balancer],
      scripted([503, new Error('reset'), 200], clock),
    )
    const call = handler(REQ, ctx)
    await clock.runAll()
    await expect(call).resolves.toEqual({ status: 200 })
    expect(breaker.log).toEqual([
      ['retryable', 10],
      ['retryable', 10],
      ['success', 10],
    ])
    expect(pending(endpoints)).toEqual([0, 0])
  })

  it('a transport that throws, and a balancer with no endpoint, still reach the breaker once each', async () => {
    const { ctx } = fixture()
    const { endpoints, breaker, stages } = parts()
    const throwing: Handler<FakeReq, FakeRes> = () => {
      throw new Error('sync')
    }
    // One attempt and no budget: no retry stage at all, so the breaker opens the scope.
    const once = retry<FakeReq, FakeRes>({
      attempts: 1,
      classify: classifyFake,
      protocol: fakeProtocol,
    })
    await expect(chain([stages.retry, stages.breaker, stages.balancer], throwing)(REQ, ctx)).rejects.toThrow(
      'sync',
    )
    expect(breaker.log.map(([v]) => v)).toEqual(['retryable', 'retryable', 'retryable'])
    expect(pending(endpoints)).toEqual([0, 0])

    const empty = balancer<FakeReq, FakeRes>({ service: 'svc', endpoints: [], strategy: roundRobin() })
    breaker.log.length = 0
    await expect(
      chain([once, stages.breaker, empty], throwing)(REQ, ctx.withAttempt(0)),
    ).rejects.toMatchObject({
      code: 'NO_HEALTHY_ENDPOINT',
    })
    expect(breaker.log).toHaveLength(1)
  })

  it('opens a scope only around a stage that joins it: the transport never sees one', async () => {
    const { ctx } = fixture()
    const { stages } = parts()
    const seen: Array<Exits | undefined> = []
    const transport: Handler<FakeReq, FakeRes> = async (_req, c) => {
      seen.push(c.exits)
      return { status: 200 }
    }
    const joiner = joinsExits<FakeReq, FakeRes>(async (_req, c) => {
      seen.push(c.exits)
      return { status: 200 }
    })
    await chain([stages.retry, stages.breaker, stages.balancer], transport)(REQ, ctx)
    await chain([stages.retry, stages.breaker, stages.balancer], joiner)(REQ, ctx.withAttempt(0))
    // Without a retry around it, the breaker opens the scope the balancer joins.
    await chain([stages.breaker, stages.balancer], joiner)(REQ, ctx.withAttempt(0))
    expect(seen[0]).toBeUndefined()
    expect(seen[1]).toBeDefined()
    expect(seen[2]).toBeDefined()
  })

  it('a stage that is not a joiner keeps the breaker on the raw outcome, in compose() as in chain()', async () => {
    const { ctx } = fixture()
    // A user's stage that turns every answer into an error: the breaker inside it must still
    // record the upstream's 200 as a success, as it does with a `.then` of its own.
    const failEverything: Middleware<FakeReq, FakeRes> = (next) => async (req, c) => {
      await next(req, c)
      throw new Error('mapped')
    }
    for (const build of [
      (s: Middleware<FakeReq, FakeRes>[], t: Handler<FakeReq, FakeRes>) => chain(s, t),
      (s: Middleware<FakeReq, FakeRes>[], t: Handler<FakeReq, FakeRes>) => compose(...s)(t),
    ]) {
      const { endpoints, breaker, stages } = parts()
      const handler = build([stages.retry, failEverything, stages.breaker, stages.balancer], async () => ({
        status: 200,
      }))
      await expect(handler(REQ, ctx.withAttempt(0))).rejects.toThrow('mapped')
      expect(breaker.log.map(([v]) => v)).toEqual(['success', 'success', 'success'])
      expect(pending(endpoints)).toEqual([0, 0])
    }
  })

  it('each hedged attempt is recorded with its own outcome, and the loser gives its endpoint back when it ends', async () => {
    const { clock, ctx } = fixture()
    const { endpoints, breaker, stages } = parts()
    const hedged = hedge<FakeReq, FakeRes>({
      delay: 20,
      maxAttempts: 2,
      idempotent: () => true,
      classify: classifyFake,
      protocol: fakeProtocol,
    })
    let n = 0
    // The first attempt answers 500 after 100 ms, the hedge 200 after 10 ms.
    const transport: Handler<FakeReq, FakeRes> = async (_req, c: Context) => {
      const first = n++ === 0
      await clock.sleep(first ? 100 : 10, first ? undefined : c.cancel)
      return { status: first ? 500 : 200 }
    }
    const call = chain([stages.retry, hedged, stages.breaker, stages.balancer], transport)(REQ, ctx)
    await clock.advance(30)
    await expect(call).resolves.toEqual({ status: 200 })
    expect(breaker.log).toEqual([['success', 10]])
    expect(pending(endpoints)).toEqual([1, 0])
    await clock.runAll()
    expect(breaker.log).toEqual([
      ['success', 10],
      ['retryable', 100],
    ])
    expect(pending(endpoints)).toEqual([0, 0])
  })

  it('the bulkhead joins the call scope through the deadline, and retry gives each attempt a scope of its own', async () => {
    const { clock, ctx } = fixture()
    const { endpoints, breaker, stages } = parts()
    const limited = bulkhead<FakeReq, FakeRes>({ max: 1 })
    const handler = chain(
      [deadline({ timeout: 1000 }), limited, stages.retry, stages.breaker, stages.balancer],
      scripted([503, 200, 200], clock),
    )
    // What Mesh.invoke does: open the call's scope, run it when the call settles.
    const call = async () => {
      const exits = new Exits()
      const c = ctx.withAttempt(0, ctx.cancel, exits)
      try {
        return await handler(REQ, c)
      } finally {
        exits.run(true, undefined, REQ, c)
      }
    }
    const first = call()
    await expect(handler(REQ, ctx.withAttempt(0))).rejects.toMatchObject({ code: 'BULKHEAD_FULL' })
    await clock.runAll()
    await expect(first).resolves.toEqual({ status: 200 })
    // The permit came back when the call's scope ran: the next call is admitted.
    const second = call()
    await clock.runAll()
    await expect(second).resolves.toEqual({ status: 200 })
    expect(breaker.log.map(([v]) => v)).toEqual(['retryable', 'success', 'success'])
    expect(pending(endpoints)).toEqual([0, 0])
  })

  it('through a mesh, a bulkhead of one gives its permit back at the end of every call: answered, failed, retried', async () => {
    const clock = new ManualClock()
    let n = 0
    const answers = [200, 'throw', 503, 200]
    const transport = async () => {
      const a = answers[n++]
      if (a === 'throw') throw new TypeError('fetch failed')
      return new Response(null, { status: a as number })
    }
    const mesh = createMesh(
      {
        services: {
          one: { endpoints: ['http://10.0.0.1:8080'], concurrency: { max: 1 }, retry: { attempts: 2 } },
        },
      },
      { clock, random: seededRandom(1), httpTransport: transport },
    )
    const f = withMesh(fetch, mesh)
    expect((await f('http://one/a')).status).toBe(200)
    // An error with no network code is a failure, not retried: the call rejects.
    await expect(f('http://one/b')).rejects.toThrow('fetch failed')
    // A 503 is retried (after a backoff on the manual clock), then answered.
    const retried = f('http://one/c')
    await clock.runAll()
    expect((await retried).status).toBe(200)
    expect(n).toBe(4)
    expect(mesh.inflight).toBe(0)
    await mesh.close()
  })

  it('a call whose exit hook throws rejects with that error and is not left in flight, by invoke as by run', async () => {
    const mesh = createMesh({ services: {} })
    const failingHook = joinsExits<string, string>(async (req, c) => {
      c.exits?.add(
        () => {
          throw new Error('hook failed')
        },
        0,
        0,
      )
      return `${req}!`
    })
    await expect(mesh.invoke(failingHook, 'a', undefined)).rejects.toThrow('hook failed')
    await expect(mesh.invoke(failingHook, 'b', new AbortController().signal)).rejects.toThrow('hook failed')
    const seen = await new Promise<unknown>((resolve) =>
      mesh.run(failingHook, 'c', { resolved: resolve, rejected: resolve }),
    )
    expect(seen).toMatchObject({ message: 'hook failed' })
    expect(mesh.inflight).toBe(0)
    await mesh.close()
  })
})

// The call's scope, run by the retry stage (D32): Mesh.invoke adds its bookkeeping to the scope
// and leaves the call's one reaction to the stack, so every path must run the scope.
describe('the call scope run by the retry stage (D32)', () => {
  /** A scope whose one hook records what it saw, and whether the call had settled by then. */
  function recorder() {
    const seen: Array<[boolean, unknown]> = []
    const scope = new Exits()
    scope.add((_a, _b, ok, result) => seen.push([ok, result]), 0, 0)
    return { seen, scope }
  }
  const retrying = (classify = classifyFake, budget?: Parameters<typeof retry>[0]['budget']) =>
    retry<FakeReq, FakeRes>({
      attempts: 3,
      backoff: constantBackoff(0),
      classify,
      protocol: fakeProtocol,
      ...(budget ? { budget } : {}),
    })

  it('marks retry, and a deadline or bulkhead around it, as runners; nothing else', () => {
    const { stages } = parts()
    const transport: Handler<FakeReq, FakeRes> = async () => ({ status: 200 })
    expect(
      isRunningExits(chain([stages.retry, stages.breaker], transport) as Handler<unknown, unknown>),
    ).toBe(true)
    const stack = chain([deadline({ timeout: 1000 }), bulkhead({ max: 1 }), stages.retry], transport)
    expect(isRunningExits(stack as Handler<unknown, unknown>)).toBe(true)
    // A retry of one attempt and no budget is no stage at all: the breaker below is a joiner only.
    const single = retry<FakeReq, FakeRes>({ attempts: 1, classify: classifyFake, protocol: fakeProtocol })
    const noRetry = chain([deadline({ timeout: 1000 }), single, stages.breaker, stages.balancer], transport)
    expect(isJoiningExits(noRetry as Handler<unknown, unknown>)).toBe(true)
    expect(isRunningExits(noRetry as Handler<unknown, unknown>)).toBe(false)
    // A user's stage outside is never given a scope, so the call keeps a reaction of its own.
    const user: Middleware<FakeReq, FakeRes> = (next) => (req, c) => next(req, c)
    expect(isRunningExits(chain([user, stages.retry], transport) as Handler<unknown, unknown>)).toBe(false)
  })

  it('runs the scope once with the outcome the call settles with, before it settles, on every path', async () => {
    const { clock, ctx } = fixture()
    const boom = new TypeError('boom')
    const cases: Array<[string, Array<number | Error>, [boolean, unknown]]> = [
      ['answered at once', [200], [true, { status: 200 }]],
      ['answered after two retries', [503, 503, 200], [true, { status: 200 }]],
      ['retried until attempts ran out', [503, 503, 503], [true, { status: 503 }]],
      ['failed on every attempt', [boom, boom, boom], [false, boom]],
    ]
    for (const [name, script, expected] of cases) {
      const { seen, scope } = recorder()
      const handler = retrying()(scripted(script, clock))
      const call = handler(REQ, ctx.withExits(scope)).then(
        (value) => ({ ran: seen.length, outcome: [true, value] }),
        (error: unknown) => ({ ran: seen.length, outcome: [false, error] }),
      )
      await clock.runAll()
      const settled = await call
      expect(settled.outcome, name).toEqual(expected)
      // The hook had run, once, when the call's promise settled, and saw what the caller sees.
      expect(settled.ran, name).toBe(1)
      expect(seen, name).toEqual([expected])
    }
  })

  it('runs the scope when a classifier or a budget of the application throws', async () => {
    const { clock, ctx } = fixture()
    const bad = new Error('classifier bug')
    const throwing = retrying(() => {
      throw bad
    })(scripted([200], clock))
    const a = recorder()
    const first = expect(throwing(REQ, ctx.withExits(a.scope))).rejects.toBe(bad)
    await clock.runAll()
    await first
    expect(a.seen).toEqual([[false, bad]])

    const broken = new Error('budget bug')
    const budget = {
      deposit() {
        throw broken
      },
      tryWithdraw: () => true,
      record() {},
    }
    const b = recorder()
    const second = retrying(classifyFake, budget as never)(scripted([200], clock))(
      REQ,
      ctx.withExits(b.scope),
    )
    await expect(second).rejects.toBe(broken)
    expect(b.seen).toEqual([[false, broken]])
  })

  it('through a mesh, no call is left in flight: answered, refused by a full bulkhead, queued, expired in the queue', async () => {
    const clock = new ManualClock()
    const mesh = createMesh({ services: {} }, { clock, random: seededRandom(1) })
    const limited = chain(
      [
        deadline({ timeout: 1000 }),
        bulkhead<FakeReq, FakeRes>({ max: 1, queue: 1, queueTimeout: 50 }),
        retrying(),
      ],
      scripted([200, 200, 200], clock, 100),
    )
    expect(isRunningExits(limited as Handler<unknown, unknown>)).toBe(true)
    const a = mesh.invoke(limited, REQ, undefined) // admitted
    const b = mesh.invoke(limited, REQ, undefined) // queued, then expires after 50 ms
    const bFailed = expect(b).rejects.toMatchObject({ code: 'BULKHEAD_FULL' })
    const c = mesh.invoke(limited, REQ, undefined) // refused: the queue is full
    await expect(c).rejects.toMatchObject({ code: 'BULKHEAD_FULL' })
    expect(mesh.inflight).toBe(2)
    await clock.advance(60)
    await bFailed
    expect(mesh.inflight).toBe(1)
    const d = mesh.invoke(limited, REQ, undefined) // queued, admitted when `a` ends
    await clock.advance(100)
    await expect(a).resolves.toEqual({ status: 200 })
    await clock.advance(100)
    await expect(d).resolves.toEqual({ status: 200 })
    expect(mesh.inflight).toBe(0)
    await mesh.close()
  })

  it('through a mesh, a stage that throws before retry still takes the call out of flight', async () => {
    const mesh = createMesh({ services: {} })
    const throwing = runsExits<FakeReq, FakeRes>(() => {
      throw new Error('thrown, not rejected')
    })
    await expect(mesh.invoke(throwing, REQ, undefined)).rejects.toThrow('thrown, not rejected')
    expect(mesh.inflight).toBe(0)
    await mesh.close()
  })
})

describe('one verdict per attempt (D34)', () => {
  /** `classifyFake`, counting its calls; `fail` makes the calls at those indexes (0-based) throw. */
  function counting(fail: number[] = []) {
    const counter = { calls: 0 }
    const classify: Classifier<FakeReq, FakeRes> = (req, outcome) => {
      const i = counter.calls++
      if (fail.includes(i)) throw new Error(`classifier bug ${i}`)
      return classifyFake(req, outcome)
    }
    return { counter, classify }
  }
  const retrying = (classify: Classifier<FakeReq, FakeRes>) =>
    retry<FakeReq, FakeRes>({ attempts: 3, backoff: constantBackoff(0), classify, protocol: fakeProtocol })

  /** A service's health with outlier detection on, logging the verdicts passive health records. */
  function passiveHealth(endpoints: Endpoint[]) {
    const health = new EndpointHealth('svc', endpoints, { outlierDetection: OUTLIER_DETECTION_DEFAULTS })
    const recorded: Verdict[] = []
    const record = health.record.bind(health)
    health.record = (endpoint, verdict, ...rest) => {
      recorded.push(verdict)
      record(endpoint, verdict, ...rest)
    }
    return { health, recorded }
  }

  it('the retry stage judges each attempt once, and the breaker and passive health record that verdict', async () => {
    const { clock, ctx } = fixture()
    const { endpoints, breaker } = parts()
    const { counter, classify } = counting()
    const { health, recorded } = passiveHealth(endpoints)
    const handler = chain(
      [
        retrying(classify),
        circuitBreaker<FakeReq, FakeRes>({ breaker, classify }),
        balancer<FakeReq, FakeRes>({ service: 'svc', endpoints, strategy: roundRobin(), health, classify }),
      ],
      scripted([503, new Error('reset'), 200], clock),
    )
    const call = handler(REQ, ctx)
    await clock.runAll()
    await expect(call).resolves.toEqual({ status: 200 })
    // Three attempts, three judgements: not one per stage that reads the verdict.
    expect(counter.calls).toBe(3)
    expect(breaker.log.map(([v]) => v)).toEqual(['retryable', 'retryable', 'success'])
    expect(recorded).toEqual(['retryable', 'retryable', 'success'])
    expect(pending(endpoints)).toEqual([0, 0])
  })

  it('a breaker or health built with another classifier judges with its own', async () => {
    const { clock, ctx } = fixture()
    const { endpoints, breaker } = parts()
    const { counter, classify } = counting()
    // The destination's own view: any 5xx is a plain failure, never retryable.
    const strict: Classifier<FakeReq, FakeRes> = (_req, o) =>
      o.ok && o.value.status < 500 ? 'success' : 'failure'
    const { health, recorded } = passiveHealth(endpoints)
    const handler = chain(
      [
        retrying(classify),
        circuitBreaker<FakeReq, FakeRes>({ breaker, classify: strict }),
        balancer<FakeReq, FakeRes>({
          service: 'svc',
          endpoints,
          strategy: roundRobin(),
          health,
          classify: strict,
        }),
      ],
      scripted([503, 200], clock),
    )
    const call = handler(REQ, ctx)
    await clock.runAll()
    await expect(call).resolves.toEqual({ status: 200 })
    expect(counter.calls).toBe(2)
    expect(breaker.log.map(([v]) => v)).toEqual(['failure', 'success'])
    expect(recorded).toEqual(['failure', 'success'])
  })

  it('a classifier that throws fails the call, and the scope still runs: the hooks judge for themselves', async () => {
    const { clock, ctx } = fixture()
    const { endpoints, breaker } = parts()
    // The retry stage's judgement (the first call) throws; the breaker's own, made after it, does not.
    const { counter, classify } = counting([0])
    const handler = chain(
      [
        retrying(classify),
        circuitBreaker<FakeReq, FakeRes>({ breaker, classify }),
        balancer<FakeReq, FakeRes>({ service: 'svc', endpoints, strategy: roundRobin() }),
      ],
      scripted([200], clock),
    )
    const call = expect(handler(REQ, ctx)).rejects.toThrow('classifier bug 0')
    await clock.runAll()
    await call
    expect(counter.calls).toBe(2)
    expect(breaker.log.map(([v]) => v)).toEqual(['success'])
    expect(pending(endpoints)).toEqual([0, 0])

    // On a retry too: the second attempt's judgement (the second call) throws.
    breaker.log.length = 0
    const later = counting([1])
    const again = chain(
      [
        retrying(later.classify),
        circuitBreaker<FakeReq, FakeRes>({ breaker, classify: later.classify }),
        balancer<FakeReq, FakeRes>({ service: 'svc', endpoints, strategy: roundRobin() }),
      ],
      scripted([503, 200], clock),
    )
    const second = expect(again(REQ, ctx)).rejects.toThrow('classifier bug 1')
    await clock.runAll()
    await second
    expect(later.counter.calls).toBe(3)
    expect(breaker.log.map(([v]) => v)).toEqual(['retryable', 'success'])
    expect(pending(endpoints)).toEqual([0, 0])
  })

  it('a half-open probe whose classifier throws gives its slot back: the breaker can still close', async () => {
    const { clock, ctx } = fixture()
    const { endpoints } = parts()
    const breaker = new CircuitBreaker({ consecutiveFailures: 1, halfOpenAfter: 10 })
    const bug = new Error('classifier bug on 299')
    // 5xx fail (not retried), 299 makes the classifier throw, the rest succeed.
    const classify: Classifier<FakeReq, FakeRes> = (_req, o) => {
      if (o.ok && o.value.status === 299) throw bug
      return o.ok && o.value.status < 500 ? 'success' : 'failure'
    }
    for (const [name, stages] of [
      ["in the retry stage's scope", [retrying(classify)]],
      ['with no retry stage', []],
    ] as const) {
      breaker.reset()
      const handler = chain(
        [
          ...stages,
          circuitBreaker<FakeReq, FakeRes>({ breaker, classify }),
          balancer<FakeReq, FakeRes>({ service: 'svc', endpoints, strategy: roundRobin() }),
        ],
        scripted([500, 299, 200], clock, 1),
      )
      const first = handler(REQ, ctx.restarted())
      await clock.runAll()
      await expect(first, name).resolves.toEqual({ status: 500 })
      expect(breaker.state.kind, name).toBe('open')
      await clock.advance(10)
      const probe = expect(handler(REQ, ctx.restarted()), name).rejects.toBe(bug)
      await clock.runAll()
      await probe
      // The probe's slot is free again: the next call is the probe that closes the breaker.
      const next = handler(REQ, ctx.restarted())
      await clock.runAll()
      await expect(next, name).resolves.toEqual({ status: 200 })
      expect(breaker.state.kind, name).toBe('closed')
      expect(pending(endpoints), name).toEqual([0, 0])
    }
  })
})
