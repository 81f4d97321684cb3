/** A rate: `rate` tokens per `periodMs`, with up to `burst` tokens at once. */
export interface QuotaLimit {
  readonly rate: number
  readonly periodMs: number
  readonly burst: number
}
/** What a store answers for one decision. */
export interface QuotaDecision {
  readonly allowed: boolean
  /** When not allowed: ms until `cost` tokens are available (0 when allowed). */
  readonly retryAfterMs: number
}
/** Where a limit's state lives: in process, or shared (Redis) for `scope: 'global'`. */
export interface QuotaStore {
  /** Takes `cost` tokens of `key` under `limit`, now; one round trip for a shared store. */
  take(key: string, cost: number, limit: QuotaLimit): Promise<QuotaDecision>
  /** Pauses `key` for `ms` (a server's Retry-After): every store user sees it. */
  pause(key: string, ms: number): Promise<void>
  /** Releases the store's resources. */
  close(): Promise<void>
}
