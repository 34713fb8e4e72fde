--[[
  revoke-n — undo admissions whose publish failed: for each still-active lease give its rate
  tokens back (capped at the bucket size), free its concurrency slots, return its budget
  reservation (if its window is current), delete the idempotency records it created, and mark it
  revoked. Holdings are read from the lease hash; they never change after admission, and the
  caller passes the same keys as KEYS so that they are declared.

  KEYS[1]   lease expiry index (ZSET)
  KEYS[2…]  per lease: the lease hash, then every key named in its conc, rate, bk and idem fields

  ARGV[1]   now in ms, or 0 to use Redis TIME
  ARGV[2]   retention of the finished lease hash in ms
  ARGV[3…]  per lease: lease id, number of KEYS that belong to it (hash included)

  Returns   number of leases revoked
]]
local rcall = redis.call
local now = tonumber(ARGV[1])
if now == 0 then
  local t = rcall('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function fmt(n)
  return string.format('%.0f', n)
end

local revoked = 0
local k = 2
for a = 3, #ARGV, 2 do
  local leaseId = ARGV[a]
  local lease = KEYS[k]
  k = k + tonumber(ARGV[a + 1])
  local v = rcall('HMGET', lease, 'st', 'conc', 'rate', 'bk', 'bw', 'res', 'idem')
  if v[1] == 'active' then
    for key in string.gmatch(v[2], '%S+') do rcall('ZREM', key, leaseId) end
    rcall('ZREM', KEYS[1], leaseId)
    for key, amount, cap, refill in string.gmatch(v[3], '([^,%s]+) (%d+) (%d+) (%d+)') do
      amount, cap, refill = tonumber(amount), tonumber(cap), tonumber(refill)
      local b = rcall('HMGET', key, 't', 'ts')
      local tokens = tonumber(b[1])
      if tokens ~= nil then
        local ts = tonumber(b[2]) or now
        if now > ts then tokens = math.min(cap, tokens + (now - ts) * refill) end
        tokens = math.min(cap, tokens + amount)
        rcall('HSET', key, 't', fmt(tokens), 'ts', fmt(math.max(now, ts)))
      end
    end
    if v[4] ~= '' then
      local w = rcall('HGET', v[4], 'w')
      if w == v[5] then
        local used = tonumber(rcall('HGET', v[4], 'u')) or 0
        rcall('HSET', v[4], 'u', fmt(math.max(0, used - (tonumber(v[6]) or 0))))
      end
    end
    for key in string.gmatch(v[7], '%S+') do rcall('DEL', key) end
    rcall('HSET', lease, 'st', 'revoked', 'fin', fmt(now))
    rcall('PEXPIRE', lease, tonumber(ARGV[2]))
    revoked = revoked + 1
  end
end
return revoked
