--[[
  expired-1 — list leases whose expiry has passed (first step of reaping: the caller then reads
  which pools each lease holds and passes them to reap-n as KEYS).

  KEYS[1]   lease expiry index (ZSET)
  ARGV[1]   now in ms, or 0 to use Redis TIME
  ARGV[2]   at most this many lease ids
  ARGV[3]   optional: list only what expired at or before this time (ms; 0 or absent: now). The
            scheduler's reaper passes the time up to which every outcome has been processed, so
            that it never reaps a lease whose in-time outcome still waits (libs/execution).

  Returns   { at, leaseId, … }: `at` = min(now, ARGV[3]), the time reap-n must reap at
]]
local rcall = redis.call
-- @include fmt
-- @include now-from-argv
local upto = tonumber(ARGV[3]) or 0
if upto > 0 and upto < now then now = upto end
local ids = rcall('ZRANGEBYSCORE', KEYS[1], '-inf', fmt(now), 'LIMIT', 0, tonumber(ARGV[2]))
table.insert(ids, 1, fmt(now))
return ids
