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
  isIdempotent,
} from './adapters/fetch/classify.js'
export { type InboundDeadlineOptions, inboundTimeout, withInboundDeadline } from './adapters/fetch/inbound.js'
export { httpProtocol, parseRetryAfter } from './adapters/fetch/protocol.js'
export type { HttpRequest } from './adapters/fetch/request.js'
export { type FetchTransportOptions, fetchTransport } from './adapters/fetch/transport.js'
export { GrpcChannelPool, type GrpcChannelPoolOptions } from './adapters/grpc/channels.js'
export { DEFAULT_GRPC_RETRYABLE_STATUS_CODES, grpcClassifier } from './adapters/grpc/classify.js'
export { CredentialsUnavailableError } from './adapters/grpc/client-channel.js'
export type { GrpcClientLike, GrpcMetadata } from './adapters/grpc/grpc-types.js'
export { type GrpcHealthProbeOptions, grpcHealthProbe, HEALTH_CHECK_PATH } from './adapters/grpc/health.js'
export { type UnaryCallOptions, unaryCall } from './adapters/grpc/promise.js'
export { grpcProtocol, parsePushback } from './adapters/grpc/protocol.js'
export {
  type GrpcMethodKind,
  type GrpcRequest,
  type GrpcResponse,
  serviceOfTarget,
} from './adapters/grpc/request.js'
export {
  type FromGrpcServiceConfigOptions,
  fromGrpcServiceConfig,
  type GrpcFailureStatus,
  type GrpcServiceConfigPatch,
  type GrpcServiceConfigTranslation,
} from './adapters/grpc/service-config.js'
export { GrpcStatus, type GrpcStatusName, type MeshStatus, statusOfError } from './adapters/grpc/status.js'
// Bearer identity (issue 24): `jwtVerifier` is what the inbound guard's `verifyToken` takes and
// what an application calls to verify tokens itself; `TokenProvider` types `createMesh`'s
// `tokens` option.
export {
  type JsonWebKeySet,
  type JwtVerifierOptions,
  jwtVerifier,
  type TokenVerifier,
} from './adapters/identity/jwt-verifier.js'
export type { TokenProvider } from './adapters/identity/token-provider.js'
export {
  type BottleneckGroupLike,
  type BottleneckLike,
  type BottleneckStoreOptions,
  bottleneckStore,
} from './adapters/redis/bottleneck-store.js'
export {
  type QuotaFailurePolicy,
  type QuotaLeaseOptions,
  type RedisClientLike,
  RedisQuotaStore,
  type RedisQuotaStoreOptions,
  redisQuotaStore,
} from './adapters/redis/redis-quota-store.js'
export {
  type PubSubClientLike,
  SharedBreakers,
  type SharedBreakersOptions,
  sharedBreakers,
} from './adapters/redis/shared-breakers.js'
export {
  type AbortListener,
  CallCancellation,
  Cancellation,
  ChildCancellation,
  neverCancelled,
} from './core/cancel.js'
export { type Clock, systemClock, type TimerHandle } from './core/clock.js'
export { Context, type ContextInit, type ContextKey, createContextKey } from './core/context.js'
export {
  AccessDeniedError,
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
  RateLimitedError,
  RetryBudgetExhaustedError,
  TimeoutError,
  TlsMaterialError,
  TlsRequiredError,
  type TlsVerificationCode,
  TlsVerificationError,
  // Bearer identity (issue 24): callers branch on these when a token is missing or refused.
  TokenInvalidError,
  type TokenRejection,
  TokenUnavailableError,
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
  type ResolvedDiscoveryConfig,
  type ResolvedEndpoint,
  type ResolvedMeshConfig,
  type ResolvedRoute,
  type ResolvedServiceConfig,
  type RetryOn,
  type ServiceConfig,
} from './mesh/config/config.js'
export type { Duration } from './mesh/config/duration.js'
export {
  type ConfigWatcher,
  loadConfig,
  type WatchConfigOptions,
  watchConfig,
} from './mesh/config/load-config.js'
export type { Input, Output, Schema } from './mesh/config/schema.js'
export type { EndpointInput, EndpointResolver } from './mesh/discovery/discovery.js'
export type { DnsOptions } from './mesh/discovery/dns.js'
export {
  fromIstio,
  type IstioEndpoints,
  type IstioImport,
  type IstioOptions,
  type IstioServiceConfig,
  type IstioTranslation,
} from './mesh/istio/from-istio.js'
export { type CloseOptions, createMesh, Mesh, type MeshOptions } from './mesh/mesh.js'
export { type WithMeshGrpcOptions, withMeshGrpc } from './mesh/with-grpc.js'
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
export { type LocalityOptions, locality } from './stages/balancer/locality.js'
export {
  ejectionLimit,
  FAILURE_PERCENTAGE_DEFAULTS,
  type FailurePercentageEjectionOptions,
  mayEject,
  OUTLIER_DETECTION_DEFAULTS,
  type OutlierDetectionOptions,
  type SuccessRateEjectionOptions,
} from './stages/balancer/outlier-detection.js'
export { type PeakEwmaOptions, peakEwma } from './stages/balancer/peak-ewma.js'
export { type RingHashOptions, ringHash } from './stages/balancer/ring-hash.js'
export { EffectiveWeights, type SlowStartOptions } from './stages/balancer/slow-start.js'
export {
  leastRequest,
  type PickInput,
  randomPick,
  roundRobin,
  type Strategy,
  type WeightedStrategyOptions,
  WeightTable,
  weightedRoundRobin,
} from './stages/balancer/strategies.js'
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
export { type FaultOptions, fault, type HeaderFault } from './stages/fault/fault.js'
// What a `quotaStore` (MeshOptions) implements, for `rateLimit.scope: 'global'` (docs/quota.md).
export type { QuotaDecision, QuotaLimit, QuotaStore } from './stages/quota/store.js'
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
export type { Pattern } from './stages/router/regex.js'
export {
  type PathMatch,
  type RouteDestination,
  type Routed,
  type RouteMatch,
  type RouteRule,
  Router,
  type RouteView,
  type StringMatch,
  stableUnit,
  templatePattern,
} from './stages/router/router.js'
export { type TimeoutOptions, timeout } from './stages/timeout/timeout.js'
