--[[
  init-2 — mark the limiter state as trustworthy, or report (and start) recovery after it was lost
  (includes/epoch.lua). Only 'fresh' opens a lost state; a rebuild opens it with state-open-3.

  KEYS[1]   epoch
  KEYS[2]   recovering-until
  ARGV[1]   now in ms, or 0 to use Redis TIME
  ARGV[2]   mode: 'fresh' (the operator knows no lease is live: write the epoch if missing)
                  | 'recover' (if the epoch is missing, set recovering-until = now + ARGV[3] if unset)
  ARGV[3]   recovery window in ms (the fail-closed fallback)

  Returns   { INIT_ANSWER_OPEN = 1, epoch } when the state is trustworthy,
            or { INIT_ANSWER_RECOVERING = 0, recoveringUntil }
]]
local rcall = redis.call
-- @include now-from-argv
-- @include epoch
if ARGV[2] == 'fresh' and rcall('EXISTS', KEYS[1]) == 0 then epoch_open(KEYS[1], KEYS[2], now) end
local fault, reopenAt = epoch_check(KEYS[1], KEYS[2], now, tonumber(ARGV[3]))
if fault then return { INIT_ANSWER_RECOVERING, fmt(reopenAt) } end
return { INIT_ANSWER_OPEN, rcall('GET', KEYS[1]) }
