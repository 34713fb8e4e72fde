--[[
  pause-1 — an admin pauses or resumes a dependency or a job type (CONTRACT §5 v1.1): admission
  refuses with `paused` while its guard (includes/guard.lua) holds pu > now.

  KEYS[1]   the guard
  ARGV[1]   now in ms, or 0 for Redis TIME (includes/now-from-argv.lua)
  ARGV[2]   1 pause, 0 resume
  ARGV[3]   pause until (ms; 0 = until resumed)

  Returns   { now, paused until (ms; 0: not paused) }
]]
local rcall = redis.call
-- @include now-from-argv
-- @include codes
-- @include fmt
local key = KEYS[1]
if ARGV[2] == '1' then
  local u = tonumber(ARGV[3])
  if u <= 0 then u = ADAPTIVE_PAUSED_FOREVER end
  rcall('HSET', key, 'pu', fmt(u))
  rcall('PERSIST', key)   -- a pause lasts until resumed or until, whatever feedback does meanwhile
  if u <= now then u = 0 end
  return { now, u }
end
rcall('HDEL', key, 'pu')
if rcall('EXISTS', key) == 1 then rcall('PEXPIRE', key, 3600000) end
return { now, 0 }
