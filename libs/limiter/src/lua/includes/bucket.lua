--[[
  bucket — a rate limit's token bucket, shared by admit and revoke; inlined where a script says
  `-- @include bucket`. Expects `rcall`.

  HASH t = tokens × periodMs, ts = ms of t; it refills `refill` (the rate's limit) units per ms up
  to `cap` (burst × periodMs), so Lua and TypeScript compute the same integers. A missing bucket is
  full.
]]
-- @include fmt

-- The bucket's tokens at `now` (refilled since ts, at most cap) and its ts; nil when it does not exist.
local function bucket_read(key, now, cap, refill)
  local v = rcall('HMGET', key, 't', 'ts')
  local tokens = tonumber(v[1])
  if tokens == nil then return nil end
  local ts = tonumber(v[2]) or now
  if now > ts then tokens = math.min(cap, tokens + (now - ts) * refill) end
  return tokens, ts
end

local function bucket_write(key, tokens, ts)
  rcall('HSET', key, 't', fmt(tokens), 'ts', fmt(ts))
end
