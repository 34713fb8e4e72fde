--[[
  epoch — is the stored state trustworthy? Shared by admit and init; inlined where a script says
  `-- @include epoch`. Expects `rcall`.

  The epoch key exists while the state is trustworthy. When Redis loses it (restart without
  persistence, flush), admission closes until recovering-until = now + the recovery window (the
  longest job timeout), when every lease granted before the loss has expired; then the epoch is
  written again.
]]
-- @include fmt
-- @include codes

-- Marks the state trustworthy from `now` on.
local function epoch_open(epochKey, untilKey, now)
  rcall('SET', epochKey, fmt(now))
  rcall('DEL', untilKey)
end

-- nil when admission is open (reopening it if the recovery window has passed); else the fault
-- (ADMIT_FAULT_STATE_LOST: this call found the loss and started recovery, ADMIT_FAULT_RECOVERING:
-- recovery is under way) and the ms at which admission reopens.
local function epoch_check(epochKey, untilKey, now, windowMs)
  if rcall('EXISTS', epochKey) == 1 then return nil end
  local reopenAt = tonumber(rcall('GET', untilKey))
  if not reopenAt then
    reopenAt = now + windowMs
    rcall('SET', untilKey, fmt(reopenAt))
    return ADMIT_FAULT_STATE_LOST, reopenAt
  end
  if now < reopenAt then return ADMIT_FAULT_RECOVERING, reopenAt end
  epoch_open(epochKey, untilKey, now)
  return nil
end
