/**
 * meshlet: a service mesh's client-side powers as a library. `withMesh(fetch, config)` returns
 * a fetch whose calls to configured services are routed, balanced, retried and timed out.
 * @packageDocumentation
 */

export {
  DEFAULT_HTTP_RETRY_ON,
  type ErrorKind,
  errorKind,
  type HttpRetryOn,
  httpClassifier,
  IDEMPOTENT_METHODS,
  idempotence,
} from './adapters/fetch/classify.js'
export { type InboundDeadlineOptions, inboundTimeout, withInboundDeadline } from './adapters/fetch/inbound.js'
export { httpProtocol, parseRetryAfter } from './adapters/fetch/protocol.js'
export { type HttpRequest, isIdempotent } from './adapters/fetch/request.js'
export { fetchTransport } from './adapters/fetch/transport.js'
export { type AbortListener, Cancellation, ChildCancellation, neverCancelled } from './core/cancel.js'
export { type Clock, systemClock, type TimerHandle } from './core/clock.js'
export { Context, type ContextInit, type ContextKey, createContextKey } from './core/context.js'
export {
  BulkheadFullError,
  CircuitOpenError,
  ConfigInvalidError,
  type ConfigIssue,
  isMeshError,
  MeshClosedError,
  MeshError,
  type MeshErrorCode,
  type MeshErrorOptions,
  NoHealthyEndpointError,
  RetryBudgetExhaustedError,
  TimeoutError,
  UnknownServiceError,
} from './core/errors.js'
export { Events, type MeshEventListener, type MeshEvents } from './core/events.js'
export { compose, type Handler, type Middleware } from './core/handler.js'
export type { Classifier, Outcome, Protocol, Verdict } from './core/outcome.js'
export { type Random, seededRandom, systemRandom } from './core/random.js'
export {
  configJsonSchema,
  type LoadBalancerName,
  type MeshConfig,
  meshConfigSchema,
  parseConfig,
  type ResolvedEndpoint,
  type ResolvedMeshConfig,
  type ResolvedServiceConfig,
  type RetryOn,
  type ServiceConfig,
} from './mesh/config/config.js'
export type { Duration } from './mesh/config/duration.js'
export type { Input, Output, Schema } from './mesh/config/schema.js'
export { type CloseOptions, createMesh, Mesh, type MeshOptions } from './mesh/mesh.js'
export { meshOf, withMesh } from './mesh/with-mesh.js'
export { type BalancerOptions, balancer } from './stages/balancer/balancer.js'
export {
  ENDPOINT,
  Endpoint,
  type EndpointHealthState,
  type EndpointInit,
} from './stages/balancer/endpoint.js'
export { type EjectionReason, EndpointHealth, type EndpointHealthConfig } from './stages/balancer/health.js'
export {
  HealthChecker,
  type HealthCheckerOptions,
  type HealthCheckOptions,
  handlerProbe,
  type Probe,
} from './stages/balancer/health-check.js'
export {
  ejectionLimit,
  FAILURE_PERCENTAGE_DEFAULTS,
  type FailurePercentageEjectionOptions,
  mayEject,
  OUTLIER_DETECTION_DEFAULTS,
  type OutlierDetectionOptions,
  type SuccessRateEjectionOptions,
} from './stages/balancer/outlier-detection.js'
export { leastRequest, randomPick, roundRobin, type Strategy } from './stages/balancer/strategies.js'
export {
  type Gradient2LimitOptions,
  gradient2Limit,
  type Limiter,
  type VegasLimitOptions,
  vegasLimit,
} from './stages/bulkhead/adaptive.js'
export { type BulkheadOptions, bulkhead } from './stages/bulkhead/bulkhead.js'
export {
  type BreakerSnapshot,
  type BreakerState,
  type BreakerStateKind,
  CircuitBreaker,
  type CircuitBreakerOptions,
  Permit,
} from './stages/circuit-breaker/breaker.js'
export { type CircuitBreakerStageOptions, circuitBreaker } from './stages/circuit-breaker/circuit-breaker.js'
export {
  FailingResponseError,
  type OpossumLike,
  type OpossumStageOptions,
  opossumStage,
} from './stages/circuit-breaker/opossum.js'
export { type DeadlineOptions, deadline } from './stages/deadline/deadline.js'
export {
  DEADLINE_HEADER,
  inheritedDeadline,
  parseGrpcTimeout,
  parseTimeoutHeader,
  runWithDeadline,
} from './stages/deadline/propagation.js'
export { type FallbackOn, type FallbackOptions, fallback, fallbackCode } from './stages/fallback/fallback.js'
export {
  type Backoff,
  constantBackoff,
  type DecorrelatedJitterBackoffOptions,
  decorrelatedJitterBackoff,
  type ExponentialBackoffOptions,
  exponentialBackoff,
  type Jitter,
} from './stages/retry/backoff.js'
export {
  type RatioBudgetOptions,
  type RetryBudget,
  ratioBudget,
  type ThrottlingBudgetOptions,
  throttlingBudget,
  unlimitedBudget,
} from './stages/retry/budget.js'
export { HedgeLostError, type HedgeOptions, hedge } from './stages/retry/hedge.js'
export { LatencyHistogram, type LatencyHistogramOptions } from './stages/retry/latency-histogram.js'
export { type RetryOptions, retry } from './stages/retry/retry.js'
export { type TimeoutOptions, timeout } from './stages/timeout/timeout.js'
