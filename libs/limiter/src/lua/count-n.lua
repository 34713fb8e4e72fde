--[[
  count-n — live leases of concurrency pools, read-only (for usage and inspect; admission counts
  with pool_live, which also drops expired counts).

  KEYS      per pool: its HASH, then its ZSET of expiry ms (includes/pool.lua)
  ARGV[1]   now in ms
  Returns   { live count per pool }
]]
local rcall = redis.call
local now = string.format('%.0f', tonumber(ARGV[1]))
local out = {}
for i = 1, #KEYS, 2 do
  local n = tonumber(rcall('HGET', KEYS[i], 'n')) or 0
  local offset = 0
  while true do
    local dead = rcall('ZRANGEBYSCORE', KEYS[i + 1], '-inf', now, 'LIMIT', offset, 1000)
    if #dead == 0 then break end
    local counts = rcall('HMGET', KEYS[i], unpack(dead))
    for c = 1, #counts do n = n - (tonumber(counts[c]) or 0) end
    if #dead < 1000 then break end
    offset = offset + 1000
  end
  out[#out + 1] = math.max(0, n)
end
return out
