--[[
  pool — a concurrency pool, shared by admit, settle, extend and revoke; inlined by
  scripts/generate-lua.mjs where a script says `-- @include pool`. Expects `rcall`.

  A pool counts leases per expiry millisecond instead of holding one member per lease:
    H  HASH  n = leases counted, <expiresAt> = how many of them expire at that ms
    X  ZSET  expiresAt -> expiresAt, the ms that have a count in H
  Live leases (expiresAt > now) = n minus the counts at ms <= now, which are dropped as they pass
  (pool_live). Exactly the count of a ZSET of leases scored by expiry, but an admission call adds
  one field per expiry ms (all jobs of a call and profile share one) instead of one member per job.
]]
local function pool_fmt(n)
  return string.format('%.0f', n)
end

-- Drops the counts that have expired and returns how many leases are live at `now`
-- (in chunks of 1000 ms: unpack has a limit, and an idle pool may have many to drop).
local function pool_live(H, X, now)
  local n = tonumber(rcall('HGET', H, 'n')) or 0
  local upto, dropped = pool_fmt(now), false
  while true do
    local dead = rcall('ZRANGEBYSCORE', X, '-inf', upto, 'LIMIT', 0, 1000)
    if #dead == 0 then break end
    dropped = true
    local counts = rcall('HMGET', H, unpack(dead))
    for i = 1, #counts do n = n - (tonumber(counts[i]) or 0) end
    rcall('HDEL', H, unpack(dead))
    rcall('ZREM', X, unpack(dead))
    if #dead < 1000 then break end
  end
  if dropped then
    if n <= 0 then
      rcall('DEL', H, X)
      n = 0
    else
      rcall('HSET', H, 'n', pool_fmt(n))
    end
  end
  return n
end

-- Counts k more leases expiring at `exp`.
local function pool_add(H, X, exp, k)
  local e = pool_fmt(exp)
  rcall('HINCRBY', H, e, k)
  rcall('HINCRBY', H, 'n', k)
  rcall('ZADD', X, e, e)
end

-- Takes one lease off the count at expiry `exp` (leaving `n` alone); false when there is none.
local function pool_take(H, X, exp)
  local e = pool_fmt(exp)
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

-- One lease expiring at `exp` (still live) leaves the pool.
local function pool_remove(H, X, exp)
  if pool_take(H, X, exp) and rcall('HINCRBY', H, 'n', -1) <= 0 then rcall('DEL', H, X) end
end

-- One live lease moves from expiry `from` to `to` (extend).
local function pool_move(H, X, from, to)
  if not pool_take(H, X, from) then return end
  local t = pool_fmt(to)
  rcall('HINCRBY', H, t, 1)
  rcall('ZADD', X, t, t)
end
