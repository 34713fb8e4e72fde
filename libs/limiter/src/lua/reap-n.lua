--[[
  reap-n — atomically free leases that are still active and expired at `now`: remove them from
  every concurrency pool and the expiry index and mark them expired. Their budget reservation
  stays spent (the actual cost is unknown). Leases settled or extended meanwhile are left alone.

  KEYS[1]   lease expiry index (ZSET)
  KEYS[2…]  per lease, in ARGV order: the lease's hash (one per admission call), then the concurrency pools it holds

  ARGV[1]   now in ms (from expired-1)
  ARGV[2]   retention of the finished lease record in ms
  ARGV[3…]  per lease: lease id, its field in the lease hash, number of concurrency pools

  Returns   JSON [ {i = leaseId, j, a, t, y, r = reserved, e = expiresAt} … ] for the leases it expired
]]
local rcall = redis.call
local now = tonumber(ARGV[1])
-- @include lease-record
local out = {}
local k = 2
for a = 3, #ARGV, 3 do
  local leaseId = ARGV[a]
  local field = ARGV[a + 1]
  local n = tonumber(ARGV[a + 2])
  local lease = KEYS[k]
  local raw = rcall('HGET', lease, field)
  local v = raw and lease_read(raw)
  if not v then
    rcall('ZREM', KEYS[1], leaseId)
  elseif v.st ~= 'active' then
    rcall('ZREM', KEYS[1], leaseId)
  elseif v.exp <= now then
    for i = k + 1, k + n do rcall('ZREM', KEYS[i], leaseId) end
    rcall('ZREM', KEYS[1], leaseId)
    lease_write(lease, field, v, 'expired', v.exps, v.out, v.act, string.format('%.0f', now), tonumber(ARGV[2]))
    out[#out + 1] = { i = leaseId, j = v.job, a = v.att, t = v.ten, y = v.typ, r = v.res, e = v.exp }
  end
  k = k + n + 1
end
if #out == 0 then return '[]' end
return cjson.encode(out)
