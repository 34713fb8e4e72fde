--[[
  guard — a dependency's adaptive state (CONTRACT §2 `adaptive`) and an admin's pause of a dependency
  or job type (§5 v1.1), shared by admit, feedback, pause and dep-state; inlined where a script says
  `-- @include guard`. Expects `rcall` and codes (ADAPTIVE_*, constants explained in src/codes.ts).

  HASH  pu      paused until (ms; ADAPTIVE_PAUSED_FOREVER: until resumed). A paused guard's key does
                not expire (feedback leaves its TTL alone)
        cu      cooldown until (ms): a throttled outcome closed the dependency to new admissions
        m, mt   the effective-rate ratio (ppm of the declared rate) as set at ms mt; it climbs back by
                ADAPTIVE_INCREASE_PPM_PER_S from there (absent: the full declared rate)
        dn      no further decrease before this ms
        cs      '1' while the outage circuit is open, half-open once ou has passed
        ou      open until (ms);  ob  the current open duration (ms);  np  no half-open probe before (ms)
        o<i>, e<i>, @<i>   successes and failures per second (includes/ring.lua) for the circuit
        cf      failures in a row (reset by a success)
]]

-- The ratio (ppm) at `now`, from the stored m and mt.
local function guard_ratio(m, mt, now)
  m = tonumber(m)
  if not m then return ADAPTIVE_PPM end
  m = m + math.max(0, now - (tonumber(mt) or now)) * ADAPTIVE_INCREASE_PPM_PER_S / 1000
  if m > ADAPTIVE_PPM then m = ADAPTIVE_PPM end
  return m
end

-- What the guard says at `now`: { paused = ms left (0: not paused; ADAPTIVE_PAUSED_FOREVER - now
-- when until resumed), ratio (ppm), cooldown = ms left (0: none), cu = when the last cooldown ends
-- or ended (nil: none), circuit = 0 closed | 1 open | 2 half-open, wait = ms until a probe may go (open) }.
local function guard_state(key, now)
  local v = rcall('HMGET', key, 'cu', 'm', 'mt', 'cs', 'ou', 'np', 'pu')
  local g = { ratio = guard_ratio(v[2], v[3], now), cooldown = 0, circuit = 0, wait = 0, paused = 0, cu = tonumber(v[1]) }
  local pu = tonumber(v[7]) or 0
  if pu > now then g.paused = pu - now end
  local cu = tonumber(v[1]) or 0
  if cu > now then g.cooldown = cu - now end
  if v[4] == '1' then
    local at = math.max(tonumber(v[5]) or 0, tonumber(v[6]) or 0)
    if at > now then
      g.circuit, g.wait = 1, at - now
    else
      g.circuit = 2
    end
  end
  return g
end
