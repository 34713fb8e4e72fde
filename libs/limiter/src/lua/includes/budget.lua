--[[
  budget — a tenant's spend in its current window, shared by settle, revoke and adopt; inlined
  where a script says `-- @include budget`. Expects `rcall`.

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

-- Reserves `amount` in the window starting at `window` (periodMs long, the window of `now`), as an
-- admission does: a hash still holding an earlier window starts this one from 0. Nothing changes
-- once that window is over (the hash is past it): a reservation counts in the window it was made in.
local function budget_charge(key, window, periodMs, amount, now)
  if window + periodMs <= now then return end
  local v = rcall('HMGET', key, 'w', 'u')
  local w, used = tonumber(v[1]), 0
  if w == window then used = tonumber(v[2]) or 0 elseif w ~= nil and w > window then return end
  rcall('HSET', key, 'w', fmt(window), 'u', fmt(used + amount))
  rcall('PEXPIRE', key, window + periodMs - now + periodMs + 60000)
end
