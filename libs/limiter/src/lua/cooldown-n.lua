--[[
  cooldown-n — a dependency answered "too many requests, come back in D ms" (a throttled outcome,
  CONTRACT §4 v1.1): its rate buckets are closed to new admissions for D ms, for every instance at
  once, by putting each into debt: a bucket holding t < -D × refill refills to 0 only after D ms, and
  admission (admit-n.lua) refuses it with `dependency_rate` until then, with the exact
  `retryAfterMs`. A bucket already deeper in debt (a longer cooldown, or cost overruns) is left as
  it is: cooldowns never shorten one another.

  KEYS[1…]  the dependency's rate buckets (includes/bucket.lua: t = tokens × periodMs, ts)
  ARGV[1]   now in ms, or 0 for Redis TIME (includes/now-from-argv.lua)
  ARGV[2]   D, the cooldown in ms (> 0)
  ARGV[3…]  per bucket: cap (burst × periodMs) and refill (units per ms), two values each

  Returns   per bucket, the ms from now until it admits again (0 when it holds tokens)
]]
local rcall = redis.call
-- @include now-from-argv
-- @include bucket
local d = tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS do
  local cap, refill = tonumber(ARGV[1 + i * 2]), tonumber(ARGV[2 + i * 2])
  local tokens = bucket_read(KEYS[i], now, cap, refill) or cap
  local target = -d * refill
  if tokens > target then
    tokens = target
    bucket_write(KEYS[i], tokens, now)
  end
  -- A missing bucket reads as full; keep this one until it has refilled (twice over).
  rcall('PEXPIRE', KEYS[i], math.ceil((cap - tokens) / refill) * 2 + 60000)
  out[i] = tokens < 0 and math.ceil(-tokens / refill) or 0
end
return out
