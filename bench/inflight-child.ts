/**
 * Bytes held per call in flight, in a fresh `node --expose-gc` process: what each client keeps
 * on the V8 heap while N calls wait on a transport that has not answered yet. Unlike time, this
 * is counted, so it does not move with the machine's load; it is what a young-generation
 * collection copies while calls are in flight (docs/decisions.md, D24).
 *
 * Every client wraps the same held call: a promise whose resolver is kept until the
 * measurement ends. `bare` is that held call alone (what the harness and the transport hold);
 * the other rows include it. Method: after a warm-up round, two full collections, then
 * `heapUsed`; then N calls are started (their promises kept in an array allocated before the
 * first reading) and `heapUsed` is read again after two full collections; the difference over N
 * is the figure, the median of three samples. Each sample's calls are then answered and awaited.
 */
import type { Handler, HttpRequest } from '../src/index.js'
import { cockatielWrap, gcHeap, loadMeshlet, median, reply } from './lib.js'

const N = Number(process.argv[2] ?? '2000')
const lib = await loadMeshlet()

const RESPONSE = new Response(null, { status: 200 })
let waiting: Array<(res: Response) => void> = []
/** A call that answers only when {@link answerAll} runs. */
const held = () => new Promise<Response>((resolve) => waiting.push(resolve))
const answerAll = () => {
  const list = waiting
  waiting = []
  for (const resolve of list) resolve(RESPONSE)
}

const heldFetch = held as unknown as typeof fetch
const heldTransport: Handler<HttpRequest, Response> = () => held()
const endpoints = ['http://127.0.0.1:1']
const mesh = (service: Record<string, unknown>) =>
  lib.withMesh(
    heldFetch,
    lib.createMesh({ services: { svc: { endpoints, ...service } } }, { httpTransport: heldTransport }),
  )
const meshDefault = mesh({})
const meshFull = mesh({ circuitBreaker: {}, concurrency: { max: 100_000 } })
const policy = cockatielWrap()

const clients: Record<string, () => Promise<unknown>> = {
  bare: () => held(),
  'mesh-default': () => meshDefault('http://svc/x'),
  'mesh-full': () => meshFull('http://svc/x'),
  'cockatiel-wrap': () => policy.execute(() => held()),
}

const calls: Array<Promise<unknown>> = new Array(N)
const result: Record<string, number> = {}
for (const [id, call] of Object.entries(clients)) {
  const samples: number[] = []
  for (let s = 0; s < 4; s++) {
    const h0 = gcHeap()
    for (let i = 0; i < N; i++) calls[i] = call()
    const h1 = gcHeap()
    answerAll()
    await Promise.all(calls)
    calls.fill(undefined as unknown as Promise<unknown>)
    if (s > 0) samples.push((h1 - h0) / N) // the first round is the warm-up
  }
  result[id] = median(samples)
}
await reply(result)
process.exit(0)
