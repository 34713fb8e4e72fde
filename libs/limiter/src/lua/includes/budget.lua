--[[
  budget — a tenant's spend in its current window, shared by settle and revoke; inlined where a
  script says `-- @include budget`. Expects `rcall`.

  HASH w = window start ms (windows aligned to periodMs), u = cost units used in that window.
]]
-- @include fmt

-- Adds `delta` (negative: gives back) to what the window starting at `window` used, never below 0.
-- Nothing changes once that window is over: a reservation counts in the window it was made in.
local function budget_adjust(key, window, delta)
  local v = rcall('HMGET', key, 'w', 'u')
  if v[1] == window then
    rcall('HSET', key, 'u', fmt(math.max(0, (tonumber(v[2]) or 0) + delta)))
  end
end
