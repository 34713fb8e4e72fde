--[[
  ring — two counters over the last ADAPTIVE_RETRY_WINDOW_S seconds (= ADAPTIVE_CIRCUIT_WINDOW_S),
  in one-second slots of a HASH; inlined where a script says `-- @include ring`. Expects `rcall`
  and codes. Used for a dependency's first attempts and retries (the retry budget, attempts key) and
  for its successes and failures (the outage circuit, guard key).

  Slot i = second % (W + 1) holds: '@<i>' = the second it counts, '<a><i>' and '<b><i>' = the
  counters. A slot whose second is older than what a sum asks for counts nothing; it is reset when
  written again. W + 1 slots: a sum over "the last W seconds" with one-second slots is either the
  current second and the W − 1 before it (never more than W seconds back: a subset of the sliding
  window) or the current one and the W before it (always at least W seconds back: a superset).
  The retry budget counts its retries over the superset and its first attempts over the subset, so
  that in the W seconds before any admission, retries never exceed ratio × first attempts +
  allowance (CONTRACT §2), at the price of a retry counting up to a second longer than W.
]]
-- @include fmt
local RING_W = ADAPTIVE_RETRY_WINDOW_S
local RING_SLOTS = RING_W + 1

-- Every field of the ring: per slot '@<i>', '<a><i>', '<b><i>'.
local function ring_fields(a, b)
  local fields = {}
  for i = 0, RING_SLOTS - 1 do
    fields[#fields + 1] = '@' .. i
    fields[#fields + 1] = a .. i
    fields[#fields + 1] = b .. i
  end
  return fields
end

-- The sums of counters a and b over the current second and the wa − 1 (for a) and wb − 1 (for b)
-- seconds before it; wa and wb are RING_W (the default: within the last W seconds) or RING_W + 1
-- (covering the last W seconds).
local function ring_sum(key, now, a, b, wa, wb)
  wa = wa or RING_W
  wb = wb or RING_W
  local sec = math.floor(now / 1000)
  local v = rcall('HMGET', key, unpack(ring_fields(a, b)))
  local sa, sb = 0, 0
  for i = 0, RING_SLOTS - 1 do
    local t = tonumber(v[i * 3 + 1])
    if t and t > sec - wa then sa = sa + (tonumber(v[i * 3 + 2]) or 0) end
    if t and t > sec - wb then sb = sb + (tonumber(v[i * 3 + 3]) or 0) end
  end
  return sa, sb
end

-- Adds n to counter c (one of the pair a, b) in the current second's slot.
local function ring_add(key, now, a, b, c, n)
  local sec = math.floor(now / 1000)
  local i = sec % RING_SLOTS
  if tonumber(rcall('HGET', key, '@' .. i)) ~= sec then rcall('HSET', key, '@' .. i, fmt(sec), a .. i, 0, b .. i, 0) end
  rcall('HINCRBY', key, c .. i, n)
end

-- Forgets every slot (the circuit starts counting afresh after a transition).
local function ring_clear(key, a, b)
  rcall('HDEL', key, unpack(ring_fields(a, b)))
end
