--[[
  rekind-n — carries a rate's state across a change of its kind (CONTRACT §2 `kind`: "bucket" ↔
  "window"; §6.1 "across policy changes"). A bucket and a window keep their state under different
  keys, so without this the new kind started empty and admitted a whole limit again at once. Run by
  every limiter that applies such a change (src/rekind.ts), at once and again a little later;
  conservative and idempotent:

  - to a window: the units the bucket is short of full (taken and not yet refilled: admitted within
    the last period or so) are counted in the window as admitted now, less what the window already
    holds (so a second run, or one from another instance, adds nothing more);
  - to a bucket: it holds no more tokens than its capacity less what the window held (the units
    admitted within the window's period), nor more than it holds already.

  Nothing is written while the state is lost (the epoch is missing).

  KEYS[1]   epoch
  KEYS[2…]  per rate: its bucket HASH, its window pool HASH, the window's expiry ZSET

  ARGV[1]   now in ms, or 0 to use Redis TIME
  ARGV[2…]  per rate, 5 values: direction ('w': now a window, 'b': now a bucket), periodMs of the new
            kind, then for a window the bucket's refill and cap as the old policy scaled them (used
            for a bucket stored without its own; includes/bucket.lua) and its periodMs, or for a
            bucket the new refill, cap (scaled by periodMs) and 0

  Returns   { REKIND_ANSWER_OK, rates whose new state was written } or { REKIND_ANSWER_STATE_LOST }
]]
local rcall = redis.call
-- @include codes
-- @include now-from-argv
-- @include fmt
-- @include pool
-- @include bucket
if rcall('EXISTS', KEYS[1]) == 0 then return { REKIND_ANSWER_STATE_LOST } end

local written = 0
local k, a = 2, 2
while a <= #ARGV do
  local B, H, X = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  local dir, period = ARGV[a], tonumber(ARGV[a + 1])
  local refill, cap, oldPeriod = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  if dir == 'w' then
    local tokens, _, p, _, c = bucket_state(B, now, cap, refill)
    if tokens ~= nil then
      local scale = p or oldPeriod
      local short = math.ceil((c - tokens) / scale)
      local seed = short - pool_live(H, X, now)
      if seed > 0 then
        pool_add(H, X, now + period, seed)
        written = written + 1
      end
    end
  else
    local held = pool_count(H, X, now)
    if held > 0 then
      local most = math.max(0, cap - held * period)
      local tokens = bucket_read(B, now, cap, refill, period)
      if tokens == nil or tokens > most then
        bucket_write(B, most, now, period, refill, cap)
        rcall('PEXPIRE', B, math.ceil((cap - most) / refill) * 2 + 60000)
        written = written + 1
      end
    end
  end
  k = k + 3
  a = a + 5
end
return { REKIND_ANSWER_OK, written }
