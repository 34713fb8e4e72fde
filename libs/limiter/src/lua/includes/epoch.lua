--[[
  epoch — is the stored state trustworthy? Shared by admit and init; inlined where a script says
  `-- @include epoch`. Expects `rcall`.

  The epoch key exists while the state is trustworthy. When Redis loses it (restart without
  persistence, flush), admission closes, and stays closed until the epoch is written again: by a
  rebuild from the durable record (state-open-3, 'rebuilt'), or, when no rebuild is possible, by the
  fail-closed fallback once recovering-until has passed (state-open-3, 'fallback'). The first call
  that finds the epoch missing sets recovering-until = now + the recovery window (the longest job
  timeout: by then every lease granted before the loss has expired). No admission reopens the
  state by itself: only the rebuild lock's holder does, so a rebuild under way is never overtaken.
]]
-- @include fmt
-- @include codes

-- Marks the state trustworthy from `now` on.
local function epoch_open(epochKey, untilKey, now)
  rcall('SET', epochKey, fmt(now))
  rcall('DEL', untilKey)
end

-- nil when admission is open; else the fault (ADMIT_FAULT_STATE_LOST: this call found the loss,
-- ADMIT_FAULT_RECOVERING: recovery is under way) and recovering-until, the end of the fail-closed
-- fallback (a rebuild reopens sooner).
local function epoch_check(epochKey, untilKey, now, windowMs)
  if rcall('EXISTS', epochKey) == 1 then return nil end
  local reopenAt = tonumber(rcall('GET', untilKey))
  if not reopenAt then
    reopenAt = now + windowMs
    rcall('SET', untilKey, fmt(reopenAt))
    return ADMIT_FAULT_STATE_LOST, reopenAt
  end
  return ADMIT_FAULT_RECOVERING, reopenAt
end
