--[[
  count-n — live leases of concurrency pools, read-only (for usage and inspect; admission counts
  with pool_live, which also drops expired counts).

  KEYS      per pool: its HASH, then its ZSET of expiry ms (includes/pool.lua)
  ARGV[1]   now in ms
  Returns   { live count per pool }
]]
local rcall = redis.call
-- @include pool
local now = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS, 2 do out[#out + 1] = pool_count(KEYS[i], KEYS[i + 1], now) end
return out
