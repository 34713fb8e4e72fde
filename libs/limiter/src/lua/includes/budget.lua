--[[
  budget — a tenant's spend in its current window, shared by admit, settle, revoke, adopt and
  attach; inlined where a script says `-- @include budget`. Expects `rcall`.

  HASH w = window start ms (windows aligned to periodMs), u = cost units used in that window,
       p = the periodMs it was written with (absent in hashes written before 2026-12-01),
       l = the limit admission wrote it under (absent before 2026-12-02).

  Debt (CONTRACT §3: the actual cost settles the budget as it does a costRate, "which may go into
  debt so that later admissions wait"): a window that used more than its limit — workers reported
  more than the estimates — starts the next one with the part over it, and so on, `l` paid back
  per period, so that jobs which all cost three times their estimate take three periods' worth of
  the budget, not one every period. A settle that comes after its window ended adds what it costs
  over its reservation to the current window (conservative: the ended window may have had room).

  After a change of the budget's periodMs the stored window is not the current one, but what it
  used may have been spent inside the current one: its whole use is carried into the current
  window when the stored window reached into it (w + p > the current start; conservative: some of
  it may have been spent before). Without the change, windows are aligned, and a stored window
  other than the current one has ended before it began.
]]
-- @include fmt

-- What an earlier window that used `u` of `l` leaves as debt at `ws`, `l` paid back per period `p` since it began.
local function budget_debt(w, u, p, l, ws)
  if p == nil or l == nil or p <= 0 then return 0 end
  return math.max(0, math.ceil(u - l * (ws - w) / p))
end

-- What the window starting at `ws` has used, its debt included (see above).
local function budget_used(key, ws)
  local v = rcall('HMGET', key, 'w', 'u', 'p', 'l')
  local w, p = tonumber(v[1]), tonumber(v[3])
  if w == nil then return 0 end
  local u = tonumber(v[2]) or 0
  if w == ws or (p ~= nil and w + p > ws) then return u end
  if w < ws then return budget_debt(w, u, p, tonumber(v[4]), ws) end
  return 0
end

-- How long a budget hash must be kept: until its window ended and the debt it holds is paid back, and a period more.
local function budget_ttl(window, periodMs, used, limit, now)
  local periods = 1
  if limit ~= nil and limit > 0 and used > limit then periods = math.ceil(used / limit) end
  return window + periods * periodMs - now + periodMs + 60000
end

-- Adds `delta` (negative: gives back) to what the window starting at `window` used, never below 0.
-- Once that window is over (the hash holds a later one), a cost over the reservation is added to the
-- current window (the debt it may have left, conservatively), and nothing is given back.
local function budget_adjust(key, window, delta, now)
  local v = rcall('HMGET', key, 'w', 'u', 'p', 'l')
  local w, win = tonumber(v[1]), tonumber(window)
  if w == nil or win == nil then return end
  if w == win or (delta > 0 and w > win) then
    local used = math.max(0, (tonumber(v[2]) or 0) + delta)
    rcall('HSET', key, 'u', fmt(used))
    local p = tonumber(v[3])
    if delta > 0 and p ~= nil then rcall('PEXPIRE', key, budget_ttl(w, p, used, tonumber(v[4]), now)) end
  end
end

-- Reserves `amount` in the window starting at `window` (periodMs long, the window of `now`), as an
-- admission does: a hash still holding an earlier window starts this one from 0. Nothing changes
-- once that window is over (the hash is past it): a reservation counts in the window it was made in.
local function budget_charge(key, window, periodMs, amount, now)
  if window + periodMs <= now then return end
  local v = rcall('HMGET', key, 'w', 'u', 'p', 'l')
  local w, p, l, used = tonumber(v[1]), tonumber(v[3]), tonumber(v[4]), 0
  if w == window or (w ~= nil and p ~= nil and p ~= periodMs and w + p > window) then
    used = tonumber(v[2]) or 0
  elseif w ~= nil and w > window then
    return
  elseif w ~= nil then
    used = budget_debt(w, tonumber(v[2]) or 0, p, l, window)
  end
  rcall('HSET', key, 'w', fmt(window), 'u', fmt(used + amount), 'p', fmt(periodMs))
  rcall('PEXPIRE', key, budget_ttl(window, periodMs, used + amount, l, now))
end
