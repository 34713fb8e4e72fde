--[[
  settle-n — finish an active lease exactly once: free every concurrency slot it holds and settle
  its budget reservation (actual minus estimate, in the window where it was reserved, if that
  window is still current). An unknown, expired or already finished lease changes nothing.

  KEYS[1]   lease hash
  KEYS[2]   lease expiry index (ZSET)
  KEYS[3]   tenant budget hash (the lease's `bk`), or the lease key again when it has none
  KEYS[4…]  the concurrency pools the lease holds (its `conc` field, in order)

  ARGV[1]   now in ms, or 0 to use Redis TIME
  ARGV[2]   lease id
  ARGV[3]   outcome (succeeded | failed | timed_out)
  ARGV[4]   actual cost, or -1 when unknown (then the estimate stands)
  ARGV[5]   retention of the finished lease hash in ms

  Returns   JSON {s = 1, j, a, t, y, r = reserved, c = actual, at = now}
            or {s = -1 (unknown) | -2 (expired) | -3 (already settled or revoked)}
]]
local rcall = redis.call
local now = tonumber(ARGV[1])
if now == 0 then
  local t = rcall('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local v = rcall('HMGET', KEYS[1], 'st', 'exp', 'job', 'att', 'ten', 'typ', 'res', 'bk', 'bw')
if not v[1] then return cjson.encode({ s = -1 }) end
if v[1] == 'expired' then return cjson.encode({ s = -2 }) end
if v[1] ~= 'active' then return cjson.encode({ s = -3 }) end
if tonumber(v[2]) <= now then return cjson.encode({ s = -2 }) end

local leaseId = ARGV[2]
for i = 4, #KEYS do rcall('ZREM', KEYS[i], leaseId) end
rcall('ZREM', KEYS[2], leaseId)

local reserved = tonumber(v[7]) or 0
local actual = tonumber(ARGV[4])
if actual < 0 then actual = reserved end
if v[8] ~= '' and actual ~= reserved then
  local w = rcall('HGET', KEYS[3], 'w')
  if w == v[9] then
    local used = tonumber(rcall('HGET', KEYS[3], 'u')) or 0
    used = math.max(0, used + actual - reserved)
    rcall('HSET', KEYS[3], 'u', string.format('%.0f', used))
  end
end

rcall('HSET', KEYS[1], 'st', 'settled', 'out', ARGV[3], 'act', string.format('%.0f', actual), 'fin', string.format('%.0f', now))
rcall('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
return cjson.encode({ s = 1, j = v[3], a = tonumber(v[4]), t = v[5], y = v[6], r = reserved, c = actual, at = now })
