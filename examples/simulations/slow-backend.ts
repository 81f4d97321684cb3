/**
 * The slow-backend scenario of Buoyant's "Beyond Round Robin" (2016), in virtual time: 11
 * backends at 1,000 calls/s; one of them is held at 2 s latency for 30 s of a 60 s run; the
 * call timeout is 1 s and there are no retries, so the balancer alone decides the outcome.
 * Published: round robin ~95% success, least-loaded ~99%, peak EWMA ~99.9%.
 *
 * Each call carries one of 1,000 user ids in an `x-user` header, which `ring-hash` hashes
 * (the other strategies ignore it), so that it shows what key affinity does under a slow backend.
 *
 * Run it: `npx tsx examples/simulations/slow-backend.ts`
 */
import type { LoadBalancerName, MeshConfig } from '../../src/index.js'
import { formatReport, type Scenario, simulate } from '../../src/testing/index.js'

/** The 11 backends; the first is the one that turns slow. */
export const backends = Array.from({ length: 11 }, (_, i) => `http://10.0.1.${i + 1}:8080`)

/** The mesh config under test, for one balancing strategy. */
export function slowBackendConfig(loadBalancer: LoadBalancerName): MeshConfig {
  return {
    services: {
      api: {
        endpoints: backends,
        loadBalancer,
        timeout: '1s',
        retry: { attempts: 1 },
        ...(loadBalancer === 'ring-hash' ? { hashKey: { header: 'x-user' } } : {}),
      },
    },
  }
}

/** 1,000 users, each call from the next one in turn. */
const users = Array.from({ length: 1000 }, (_, i) => ({
  url: 'http://api/',
  init: { headers: { 'x-user': `user-${i}` } },
}))

/** The scenario: healthy backends answer in ~5 ms (p99 30 ms); one is at 2 s from 15 s to 45 s. */
export const slowBackendScenario: Scenario = {
  seed: 2016,
  duration: '60s',
  rate: 1000,
  request: (i) => users[i % users.length]!,
  defaults: { latency: { logNormal: { median: 5, p99: 30 } } },
  events: [{ endpoints: [backends[0]!], from: '15s', to: '45s', behavior: { latency: 2000 } }],
}

/** Every strategy meshlet has, in the order the docs table lists them. */
export const strategies: readonly LoadBalancerName[] = [
  'round-robin',
  'weighted-round-robin',
  'random',
  'ring-hash',
  'least-request',
  'peak-ewma',
]

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const lb of strategies) {
    console.log(`\n== ${lb}`)
    console.log(formatReport(await simulate(slowBackendConfig(lb), slowBackendScenario)))
  }
}
