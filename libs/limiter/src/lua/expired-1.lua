--[[
  expired-1 — list leases whose expiry has passed (first step of reaping: the caller then reads
  which pools each lease holds and passes them to reap-n as KEYS).

  KEYS[1]   lease expiry index (ZSET)
  ARGV[1]   now in ms, or 0 to use Redis TIME
  ARGV[2]   at most this many lease ids

  Returns   { now, leaseId, … }
]]
local rcall = redis.call
-- @include fmt
-- @include now-from-argv
local ids = rcall('ZRANGEBYSCORE', KEYS[1], '-inf', fmt(now), 'LIMIT', 0, tonumber(ARGV[2]))
table.insert(ids, 1, fmt(now))
return ids
