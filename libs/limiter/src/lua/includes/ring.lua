--[[
  ring — two counters over the last ADAPTIVE_RETRY_WINDOW_S seconds (= ADAPTIVE_CIRCUIT_WINDOW_S),
  in one-second slots of a HASH; inlined where a script says `-- @include ring`. Expects `rcall`
  and codes. Used for a dependency's first attempts and retries (the retry budget, attempts key) and
  for its successes and failures (the outage circuit, guard key).

  Slot i = second % W holds: '@<i>' = the second it counts, '<a><i>' and '<b><i>' = the counters.
  A slot whose second is older than the window counts nothing; it is reset when written again.
]]
-- @include fmt
local RING_W = ADAPTIVE_RETRY_WINDOW_S

-- Every field of the ring: per slot '@<i>', '<a><i>', '<b><i>'.
local function ring_fields(a, b)
  local fields = {}
  for i = 0, RING_W - 1 do
    fields[#fields + 1] = '@' .. i
    fields[#fields + 1] = a .. i
    fields[#fields + 1] = b .. i
  end
  return fields
end

-- The sums of counters a and b over the slots of the last W seconds (the current one included).
local function ring_sum(key, now, a, b)
  local sec = math.floor(now / 1000)
  local v = rcall('HMGET', key, unpack(ring_fields(a, b)))
  local sa, sb = 0, 0
  for i = 0, RING_W - 1 do
    local t = tonumber(v[i * 3 + 1])
    if t and t > sec - RING_W then
      sa = sa + (tonumber(v[i * 3 + 2]) or 0)
      sb = sb + (tonumber(v[i * 3 + 3]) or 0)
    end
  end
  return sa, sb
end

-- Adds n to counter c (one of the pair a, b) in the current second's slot.
local function ring_add(key, now, a, b, c, n)
  local sec = math.floor(now / 1000)
  local i = sec % RING_W
  if tonumber(rcall('HGET', key, '@' .. i)) ~= sec then rcall('HSET', key, '@' .. i, fmt(sec), a .. i, 0, b .. i, 0) end
  rcall('HINCRBY', key, c .. i, n)
end

-- Forgets every slot (the circuit starts counting afresh after a transition).
local function ring_clear(key, a, b)
  rcall('HDEL', key, unpack(ring_fields(a, b)))
end
