--[[
  state-open-3 — reopens admission after a state loss (includes/epoch.lua), for the holder of the
  rebuild lock only, and releases the lock.
    'rebuilt'   the state was rebuilt from the durable record (state-restore-n): open now.
    'fallback'  nothing could be rebuilt (the persister not caught up, PostgreSQL unreachable): open
                only once recovering-until has passed, when every lease granted before the loss has
                expired (leases extended beyond their job type's timeout excepted).

  KEYS[1]   epoch
  KEYS[2]   recovering-until
  KEYS[3]   the rebuild lock
  ARGV[1]   now in ms, or 0 to use Redis TIME
  ARGV[2]   the caller's lock token
  ARGV[3]   'rebuilt' | 'fallback'
  ARGV[4]   recovery window in ms (sets recovering-until if a fallback finds it unset)

  Returns   { OPEN_ANSWER_OPENED } | { OPEN_ANSWER_ALREADY_OPEN } (nothing to do, the lock is released if ours)
            | { OPEN_ANSWER_LOCK_LOST } | { OPEN_ANSWER_TOO_EARLY, recoveringUntil } (fallback before its time)
]]
local rcall = redis.call
-- @include now-from-argv
-- @include epoch
local ours = rcall('GET', KEYS[3]) == ARGV[2]
if rcall('EXISTS', KEYS[1]) == 1 then
  if ours then rcall('DEL', KEYS[3]) end
  return { OPEN_ANSWER_ALREADY_OPEN }
end
if not ours then return { OPEN_ANSWER_LOCK_LOST } end
if ARGV[3] == 'fallback' then
  local until_ = tonumber(rcall('GET', KEYS[2]))
  if not until_ then
    until_ = now + tonumber(ARGV[4])
    rcall('SET', KEYS[2], fmt(until_))
  end
  if now < until_ then return { OPEN_ANSWER_TOO_EARLY, fmt(until_) } end
end
epoch_open(KEYS[1], KEYS[2], now)
rcall('DEL', KEYS[3])
return { OPEN_ANSWER_OPENED }
