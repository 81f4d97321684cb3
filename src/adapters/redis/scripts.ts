/**
 * The Lua scripts of the Redis quota store: each decision is one atomic script, so a limit
 * shared by many processes is decided by one clock (Redis's `TIME`) in one place.
 */

/**
 * GCRA (the generic cell rate algorithm, as in ATM's traffic policing and `redis-cell`), with
 * the key's pause checked first, taking between `cost` and `want` tokens at once (lease mode
 * asks for more than one call's cost; a plain decision asks for exactly `cost`).
 *
 * KEYS[1] holds the theoretical arrival time (TAT, ms with microsecond digits); KEYS[2] is the
 * pause key (its PTTL is the pause left). ARGV: emission interval T (ms per token), burst, cost,
 * want. Returns `{granted, retryAfterMs}`: `granted >= cost` admits; `0` refuses.
 *
 * The bound: a key admits at most `burst + elapsed / T` tokens over any span of time, exactly,
 * whatever the number of processes, because the only clock read is Redis's. `TIME` before a
 * write needs effect replication: the default since Redis 5, the only mode since Redis 7; on 3.2
 * to 4 `redis.replicate_commands()` turns it on.
 */
export const GCRA_SCRIPT = `
if redis.replicate_commands then pcall(redis.replicate_commands) end
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return {0, paused} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local T = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local avail = math.floor((now + burst * T - tat) / T + 1e-9)
if avail < cost then
  local wait = math.ceil(tat + cost * T - burst * T - now)
  if wait < 1 then wait = 1 end
  return {0, wait}
end
local grant = want
if grant > avail then grant = avail end
if grant > 0 then
  local newTat = tat + grant * T
  redis.call('SET', KEYS[1], string.format('%.3f', newTat), 'PX', math.ceil(newTat - now) + 1)
end
return {grant, 0}
`

/** Pauses KEYS[1] for ARGV[1] ms, unless a longer pause is in force; returns the pause left. */
export const PAUSE_SCRIPT = `
local left = redis.call('PTTL', KEYS[1])
local ms = tonumber(ARGV[1])
if left < ms then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
  return ms
end
return left
`
