/**
 * `meshlet/testing`: run the real pipeline on virtual time with reproducible randomness, so a
 * resilience policy can be unit-tested in milliseconds: a manual clock, a seeded random,
 * simulated endpoints and `simulate()`.
 */
export { pendingSystemTimers } from '../core/clock.js'
export { seededRandom } from '../core/random.js'
export { type LatencySampler, type LatencySpec, latencySampler } from './latency.js'
export { ManualClock, type ManualClockOptions } from './manual-clock.js'
export {
  type EndpointReport,
  formatReport,
  type LatencySummary,
  type Scenario,
  type ScenarioEvent,
  type SimDuration,
  type SimRequest,
  type SimulationReport,
  simulate,
  type Transition,
} from './simulate.js'
export {
  type EndpointBehavior,
  type EndpointStats,
  type ScriptedEvent,
  SimulatedEndpoints,
  type SimulatedEndpointsOptions,
  type SimulatedError,
  type SimulatedVerdict,
} from './simulated-endpoints.js'
