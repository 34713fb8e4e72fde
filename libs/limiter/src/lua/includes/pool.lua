--[[
  pool — a concurrency pool (and a rate window: units instead of leases), shared by admit, settle,
  extend, revoke and count; inlined by scripts/generate-lua.mjs where a script says
  `-- @include pool`. Expects `rcall`.

  A pool counts leases per expiry millisecond instead of holding one member per lease:
    H  HASH  n = leases counted, <expiresAt> = how many of them expire at that ms
    X  ZSET  expiresAt -> expiresAt, the ms that have a count in H
  Live leases (expiresAt > now) = n minus the counts at ms <= now, which are dropped as they pass
  (pool_live). Exactly the count of a ZSET of leases scored by expiry, but an admission call adds
  one field per expiry ms (all jobs of a call and profile share one) instead of one member per job.
]]
-- @include fmt

-- Up to 1000 expiry ms at or before `upto`, from the `offset`-th on (in chunks: unpack has a limit,
-- and an idle pool may have many), and how many leases they count.
local function pool_expired(H, X, upto, offset)
  local dead, gone = rcall('ZRANGEBYSCORE', X, '-inf', upto, 'LIMIT', offset, 1000), 0
  if #dead > 0 then
    local counts = rcall('HMGET', H, unpack(dead))
    for i = 1, #counts do gone = gone + (tonumber(counts[i]) or 0) end
  end
  return dead, gone
end

-- How many leases are live at `now`, read-only (usage and inspect).
local function pool_count(H, X, now)
  local n = tonumber(rcall('HGET', H, 'n')) or 0
  local upto, offset = fmt(now), 0
  while true do
    local dead, gone = pool_expired(H, X, upto, offset)
    n = n - gone
    if #dead < 1000 then break end
    offset = offset + 1000
  end
  return math.max(0, n)
end

-- Drops the counts that have expired and returns how many leases are live at `now` (admission).
local function pool_live(H, X, now)
  local n = tonumber(rcall('HGET', H, 'n')) or 0
  local upto, dropped = fmt(now), false
  while true do
    local dead, gone = pool_expired(H, X, upto, 0)
    if #dead == 0 then break end
    dropped = true
    n = n - gone
    rcall('HDEL', H, unpack(dead))
    rcall('ZREM', X, unpack(dead))
    if #dead < 1000 then break end
  end
  if dropped then
    if n <= 0 then
      rcall('DEL', H, X)
      n = 0
    else
      rcall('HSET', H, 'n', fmt(n))
    end
  end
  return n
end

-- Counts k more leases expiring at `exp`.
local function pool_add(H, X, exp, k)
  local e = fmt(exp)
  rcall('HINCRBY', H, e, k)
  rcall('HINCRBY', H, 'n', k)
  rcall('ZADD', X, e, e)
end

-- Takes one lease off the count at expiry `exp` (leaving `n` alone); false when there is none.
local function pool_take(H, X, exp)
  local e = fmt(exp)
  local c = tonumber(rcall('HGET', H, e))
  if not c then return false end
  if c <= 1 then
    rcall('HDEL', H, e)
    rcall('ZREM', X, e)
  else
    rcall('HINCRBY', H, e, -1)
  end
  return true
end

-- Changes the units counted at expiry `exp` by k (settle: a window entry becomes the actual cost's
-- share): k > 0 adds at that expiry; k < 0 takes off at most what is counted there.
local function pool_adjust(H, X, exp, k)
  if k > 0 then
    pool_add(H, X, exp, k)
    return
  end
  local e = fmt(exp)
  local c = tonumber(rcall('HGET', H, e))
  if not c or c <= 0 then return end
  local g = math.min(c, -k)
  if g >= c then
    rcall('HDEL', H, e)
    rcall('ZREM', X, e)
  else
    rcall('HINCRBY', H, e, -g)
  end
  if rcall('HINCRBY', H, 'n', -g) <= 0 then rcall('DEL', H, X) end
end

-- One lease expiring at `exp` (still live) leaves the pool.
local function pool_remove(H, X, exp)
  if pool_take(H, X, exp) and rcall('HINCRBY', H, 'n', -1) <= 0 then rcall('DEL', H, X) end
end

-- One live lease moves from expiry `from` to `to` (extend).
local function pool_move(H, X, from, to)
  if not pool_take(H, X, from) then return end
  local t = fmt(to)
  rcall('HINCRBY', H, t, 1)
  rcall('ZADD', X, t, t)
end
