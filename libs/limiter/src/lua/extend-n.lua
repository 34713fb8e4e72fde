--[[
  extend-n — move an active, unexpired lease's expiry to max(current expiry, now + ms), in the
  lease hash, the expiry index and every concurrency pool it holds.

  KEYS[1]   lease hash
  KEYS[2]   lease expiry index (ZSET)
  KEYS[3…]  the concurrency pools the lease holds

  ARGV[1]   now in ms, or 0 to use Redis TIME
  ARGV[2]   lease id
  ARGV[3]   ms to extend by (from now)
  ARGV[4]   retention of the finished lease hash in ms

  Returns   JSON {s = 1, j, a, t, y, r = reserved, e = new expiresAt}
            or {s = -1 (unknown) | -2 (expired) | -3 (already settled or revoked)}
]]
local rcall = redis.call
local now = tonumber(ARGV[1])
if now == 0 then
  local t = rcall('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local v = rcall('HMGET', KEYS[1], 'st', 'exp', 'job', 'att', 'ten', 'typ', 'res')
if not v[1] then return cjson.encode({ s = -1 }) end
if v[1] == 'expired' then return cjson.encode({ s = -2 }) end
if v[1] ~= 'active' then return cjson.encode({ s = -3 }) end
local exp = tonumber(v[2])
if exp <= now then return cjson.encode({ s = -2 }) end

local newExp = math.max(exp, now + tonumber(ARGV[3]))
local score = string.format('%.0f', newExp)
local leaseId = ARGV[2]
for i = 3, #KEYS do rcall('ZADD', KEYS[i], 'XX', score, leaseId) end
rcall('ZADD', KEYS[2], 'XX', score, leaseId)
rcall('HSET', KEYS[1], 'exp', score)
rcall('PEXPIRE', KEYS[1], newExp - now + tonumber(ARGV[4]))
return cjson.encode({ s = 1, j = v[3], a = tonumber(v[4]), t = v[5], y = v[6], r = tonumber(v[7]) or 0, e = newExp })
