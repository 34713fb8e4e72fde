--[[
  feedback-n — what a worker's outcome says about its dependencies (CONTRACT §2 `adaptive`, §4 v1.1),
  applied to their guards (includes/guard.lua) in one step:

  - throttled (the dependency refused for load and asked for D ms): closed to new admissions until
    now + D (a longer cooldown already set stays), and, unless a decrease happened within the last
    ADAPTIVE_DECREASE_GAP_MS after its cooldown, the effective-rate ratio is multiplied by
    ADAPTIVE_DECREASE_PPM (never below minRatio). Throttling says nothing about an outage.
  - succeeded / failed (an error or a timeout): counted per second for the outage circuit. Closed:
    a failure that makes the last ADAPTIVE_CIRCUIT_WINDOW_S seconds hold at least
    ADAPTIVE_CIRCUIT_MIN_CALLS outcomes, half of them failures, or that is the
    ADAPTIVE_CIRCUIT_MIN_CALLS-th failure in a row (field cf), opens it for ADAPTIVE_CIRCUIT_OPEN_MS.
    Open: a failure before `ou` is news from before the opening and changes nothing; once `ou` has
    passed (half-open: admission lets probes through), a failure reopens it for twice as long (at
    most ADAPTIVE_CIRCUIT_OPEN_MAX_MS) and a success closes it.
  - n successes at once (ARGV[4], the scheduler sums the successes of a moment per job type) count as
    n successes in a row at `now`: the first closes an open circuit, the others count in the ring.

  Once per attempt: a failure's feedback may carry a memo key (one per job attempt). The first call
  applies the signal and stores what it answered (whether each circuit was open); a later call with
  the same memo (the outcome redelivered after its retry or dead letter was published, but before
  it was acknowledged) changes nothing and answers the same, with no transitions — so the attempt is
  counted once and the retry-or-dead decision that follows is the same on every delivery.

  KEYS[1…g] the guards of the dependencies concerned
  KEYS[g+1] the attempt's memo (when ARGV[6] > 0)
  ARGV[1]   now in ms, or 0 for Redis TIME (includes/now-from-argv.lua)
  ARGV[2]   the signal (SIGNAL_*: 1 succeeded, 2 failed, 3 throttled)
  ARGV[3]   D: the cooldown asked for, ms (throttled; 0 = none)
  ARGV[4]   n: how many outcomes this signal stands for (≥ 1; more than 1 for successes only)
  ARGV[5]   g: the number of guards
  ARGV[6]   how long the memo is kept, ms (0: no memo)
  ARGV[7…]  per guard: the dependency's minRatio in ppm

  Returns   per guard, two values: 1 when its circuit was open before this outcome and stays so (a
            failure before `ou`, or a success: the attempt is not charged to the job), else 0 (a
            failure that reopens a half-open circuit is charged); and its transition (TRANSITION_*)
]]
local rcall = redis.call
-- @include now-from-argv
-- @include codes
-- @include fmt
-- @include guard
-- @include ring

local signal, d = tonumber(ARGV[2]), tonumber(ARGV[3])
local n = signal == SIGNAL_SUCCEEDED and math.max(1, tonumber(ARGV[4]) or 1) or 1
local g, memoTtl = tonumber(ARGV[5]), tonumber(ARGV[6])
local memo = memoTtl > 0 and KEYS[g + 1] or nil
local TTL = 3600000   -- an hour without feedback: the guard is forgotten (closed, full rate)
local out = {}
if memo then
  local seen = rcall('GET', memo)
  if seen then
    for was in string.gmatch(seen, '%d') do
      out[#out + 1] = tonumber(was)
      out[#out + 1] = TRANSITION_NONE
    end
    return out
  end
end
local wasAll = ''
for i = 1, g do
  local key = KEYS[i]
  local v = rcall('HMGET', key, 'cu', 'm', 'mt', 'dn', 'cs', 'ou', 'ob')
  local was = v[5] == '1' and 1 or 0
  local transition = TRANSITION_NONE
  if signal == SIGNAL_THROTTLED then
    local cu = tonumber(v[1]) or 0
    if d > 0 and cu < now + d then
      cu = now + d
      rcall('HSET', key, 'cu', fmt(cu))
    end
    if now >= (tonumber(v[4]) or 0) then
      local minppm = tonumber(ARGV[6 + i])
      local m = math.max(minppm, math.floor(guard_ratio(v[2], v[3], now) * ADAPTIVE_DECREASE_PPM / ADAPTIVE_PPM))
      rcall('HSET', key, 'm', fmt(m), 'mt', fmt(now), 'dn', fmt(math.max(cu, now) + ADAPTIVE_DECREASE_GAP_MS))
      transition = TRANSITION_DECREASED
    end
  else
    local ok = signal == SIGNAL_SUCCEEDED
    if was == 1 then
      local ou = tonumber(v[6]) or 0
      if ok then
        rcall('HDEL', key, 'cs', 'ou', 'ob', 'np', 'cf')
        ring_clear(key, 'o', 'e')
        if n > 1 then ring_add(key, now, 'o', 'e', 'o', n - 1) end
        transition = TRANSITION_CLOSED
      elseif now >= ou then
        local ob = math.min(ADAPTIVE_CIRCUIT_OPEN_MAX_MS, math.max(ADAPTIVE_CIRCUIT_OPEN_MS, (tonumber(v[7]) or 0) * 2))
        rcall('HSET', key, 'ou', fmt(now + ob), 'ob', fmt(ob))
        transition = TRANSITION_REOPENED
        -- Half-open: this failure tested the dependency (a probe, or a job still running from before
        -- the opening) and is charged to the job like any failure. Left free, a job that fails for
        -- its own reasons would be the probe again and again, each time uncharged.
        was = 0
      end
    else
      ring_add(key, now, 'o', 'e', ok and 'o' or 'e', n)
      if ok then
        rcall('HDEL', key, 'cf')
      else
        -- A sudden total outage shows as failures in a row long before it outweighs the successes of
        -- the last 10 s: either opens the circuit.
        local inRow = rcall('HINCRBY', key, 'cf', 1)
        local good, bad = ring_sum(key, now, 'o', 'e')
        if inRow >= ADAPTIVE_CIRCUIT_MIN_CALLS or (good + bad >= ADAPTIVE_CIRCUIT_MIN_CALLS and bad * 2 >= good + bad) then
          rcall('HSET', key, 'cs', '1', 'ou', fmt(now + ADAPTIVE_CIRCUIT_OPEN_MS), 'ob', fmt(ADAPTIVE_CIRCUIT_OPEN_MS), 'np', '0')
          ring_clear(key, 'o', 'e')
          rcall('HDEL', key, 'cf')
          transition = TRANSITION_OPENED
        end
      end
    end
  end
  if rcall('HEXISTS', key, 'pu') == 0 then rcall('PEXPIRE', key, TTL) end
  out[#out + 1] = was
  out[#out + 1] = transition
  wasAll = wasAll .. was
end
if memo then rcall('SET', memo, wasAll, 'PX', memoTtl) end
return out
