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
    admitted within the window's period), nor more than it holds already;
  - a window whose periodMs changed: every unit it holds leaves periodMs after its admission under
    the new period, so its entries move by the difference (a longer period keeps them longer; what
    left under the old period before the change is not known any more). A marker key records the
    period the window was moved to, for a minute (longer than any instance takes to apply a change),
    so that it moves once, whoever runs this.

  Nothing is written while the state is lost (the epoch is missing).

  KEYS[1]   epoch
  KEYS[2…]  per rate: its bucket HASH, its window pool HASH, the window's expiry ZSET, the window's
            period marker (a STRING)

  ARGV[1]   now in ms, or 0 to use Redis TIME
  ARGV[2…]  per rate, 5 values: what changed ('w': now a window, 'b': now a bucket, 'p': a window's
            period), periodMs of the new kind or period, then for 'w' the bucket's refill and cap as
            the old policy scaled them (used for a bucket stored without its own; includes/bucket.lua)
            and its periodMs, for 'b' the new refill, cap (scaled by periodMs) and 0, for 'p' 0, 0 and
            the old periodMs

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
  local B, H, X, M = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
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
  elseif dir == 'p' then
    local stored = tonumber(rcall('GET', M)) or oldPeriod
    local shift = period - stored
    rcall('SET', M, fmt(period), 'PX', 60000)
    if shift ~= 0 and pool_live(H, X, now) > 0 then
      local es = rcall('ZRANGE', X, 0, -1)
      local counts = {}
      for from = 1, #es, 1000 do
        local chunk = rcall('HMGET', H, unpack(es, from, math.min(#es, from + 999)))
        for i = 1, #chunk do counts[from + i - 1] = chunk[i] end
      end
      rcall('DEL', X)
      for i = 1, #es do rcall('HDEL', H, es[i]) end
      local n = 0
      for i = 1, #es do
        local c = tonumber(counts[i]) or 0
        local e = tonumber(es[i]) + shift
        -- a unit whose new expiry has passed has left the window
        if c > 0 and e > now then
          local f = fmt(e)
          rcall('HINCRBY', H, f, c)
          rcall('ZADD', X, f, f)
          n = n + c
        end
      end
      if n > 0 then
        rcall('HSET', H, 'n', fmt(n))
        written = written + 1
      else
        rcall('DEL', H, X)
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
  k = k + 4
  a = a + 5
end
return { REKIND_ANSWER_OK, written }
