--[[
  bucket — a rate limit's token bucket, shared by admit, settle, revoke and state-restore; inlined
  where a script says `-- @include bucket`. Expects `rcall`.

  HASH t = tokens × periodMs, ts = ms of t; it refills `refill` (the rate's limit) units per ms up
  to `cap` (burst × periodMs), so Lua and TypeScript compute the same integers. A missing bucket is
  full. The writer's rate is stored with it, so the value says what it means: p = the periodMs t is
  scaled by, r = its refill, c = its cap. A bucket written before these fields existed (no p) is read
  in the reader's scale, as it always was.

  A change of a rate's periodMs (p differs from the reader's period) converts instead of
  reinterpreting: tokens = t / p, rescaled to the new period, capped at the new capacity. When the
  policy changed between ts and now is not known, so the reading is the conservative one: the fewer
  tokens of "the old rate (r, c) until now" and "the new rate since ts" (any change time in between
  gives at least that many: the count is concave in it). src/read-models.ts computes the same.
  A change of limit or burst alone (same period) reads with the new ones, as before.
]]
-- @include fmt

-- The bucket's tokens at `now` in the reader's scale (period; refilled since ts, at most cap), its
-- ts, and true when it was stored at another period (converted: the caller writes it back in its own
-- scale, so that from then on it refills at the new rate); nil when it does not exist.
local function bucket_read(key, now, cap, refill, period)
  local v = rcall('HMGET', key, 't', 'ts', 'p', 'r', 'c')
  local tokens = tonumber(v[1])
  if tokens == nil then return nil end
  local ts = tonumber(v[2]) or now
  local p = tonumber(v[3])
  if p == nil or p == period or p <= 0 then
    if now > ts then tokens = math.min(cap, tokens + (now - ts) * refill) end
    return tokens, ts, false
  end
  local dt = 0
  if now > ts then dt = now - ts end
  local r, c = tonumber(v[4]) or 0, tonumber(v[5])
  -- the old rate until now, converted (capped at the old capacity first)
  local old = tokens + dt * r
  if c and old > c then old = c end
  old = old * period / p
  -- the new rate since ts
  local new = tokens * period / p + dt * refill
  return math.floor(math.min(cap, old, new)), math.max(now, ts), true
end

-- The bucket in its own scale (settle, revoke: they change it by what a lease took, whatever the
-- policy says now): tokens refilled since ts at its stored rate, ts, and its p, r, c (nil, and the
-- caller's cap and refill used, for a bucket written before they were stored); nil when missing.
local function bucket_state(key, now, cap, refill)
  local v = rcall('HMGET', key, 't', 'ts', 'p', 'r', 'c')
  local tokens = tonumber(v[1])
  if tokens == nil then return nil end
  local ts = tonumber(v[2]) or now
  local p, r, c = tonumber(v[3]), tonumber(v[4]), tonumber(v[5])
  if p == nil or r == nil or c == nil then p, r, c = nil, refill, cap end
  if now > ts then tokens = math.min(c, tokens + (now - ts) * r) end
  return tokens, ts, p, r, c
end

-- Writes t at ts, with the rate it is scaled by (period nil: a bucket of the previous layout, kept so).
local function bucket_write(key, tokens, ts, period, refill, cap)
  if period then
    rcall('HSET', key, 't', fmt(tokens), 'ts', fmt(ts), 'p', fmt(period), 'r', fmt(refill), 'c', fmt(cap))
  else
    rcall('HSET', key, 't', fmt(tokens), 'ts', fmt(ts))
  end
end
