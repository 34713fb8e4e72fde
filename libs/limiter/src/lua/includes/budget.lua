--[[
  budget — a tenant's spend in its current window, shared by settle, revoke and adopt; inlined
  where a script says `-- @include budget`. Expects `rcall`.

  HASH w = window start ms (windows aligned to periodMs), u = cost units used in that window,
       p = the periodMs it was written with (absent in hashes written before 2026-12-01).

  After a change of the budget's periodMs the stored window is not the current one, but what it
  used may have been spent inside the current one: its whole use is carried into the current
  window when the stored window reached into it (w + p > the current start; conservative: some of
  it may have been spent before). Without the change, windows are aligned, and a stored window
  other than the current one has ended before it began.
]]
-- @include fmt

-- What the window starting at `ws` has used (see above).
local function budget_used(key, ws)
  local v = rcall('HMGET', key, 'w', 'u', 'p')
  local w, p = tonumber(v[1]), tonumber(v[3])
  if w ~= nil and (w == ws or (p ~= nil and w + p > ws)) then return tonumber(v[2]) or 0 end
  return 0
end

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
  local v = rcall('HMGET', key, 'w', 'u', 'p')
  local w, p, used = tonumber(v[1]), tonumber(v[3]), 0
  if w == window or (w ~= nil and p ~= nil and p ~= periodMs and w + p > window) then
    used = tonumber(v[2]) or 0
  elseif w ~= nil and w > window then
    return
  end
  rcall('HSET', key, 'w', fmt(window), 'u', fmt(used + amount), 'p', fmt(periodMs))
  rcall('PEXPIRE', key, window + periodMs - now + periodMs + 60000)
end
