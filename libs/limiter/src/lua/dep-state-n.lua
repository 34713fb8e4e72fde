--[[
  dep-state-n — a dependency's live state, read-only (GET /v1/dependencies/{name}/state).

  KEYS[1]   its guard (includes/guard.lua; may not exist: closed, full rate)
  KEYS[2]   its attempt counters (includes/ring.lua: f = first attempts, r = retries)
  KEYS[3…]  its concurrency pool: HASH, then expiry ZSET (includes/pool.lua)
  ARGV[1]   now in ms, or 0 for Redis TIME

  Returns   { now, ratio ppm, cooldown ms left, circuit (0 closed, 1 open, 2 half-open), ms until a
            probe may go, first attempts and retries over the last 10 s, in flight, paused until
            (ms; 0: not paused) }
]]
local rcall = redis.call
-- @include now-from-argv
-- @include codes
-- @include guard
-- @include ring
-- @include pool
local g = guard_state(KEYS[1], now)
local firsts, retries = ring_sum(KEYS[2], now, 'f', 'r', RING_W, RING_W + 1)
local pausedUntil = 0
if g.paused > 0 then pausedUntil = now + g.paused end
return { now, math.floor(g.ratio), g.cooldown, g.circuit, g.wait, firsts, retries, pool_count(KEYS[3], KEYS[4], now), pausedUntil }
