--[[
  reap-n — atomically mark leases expired that are still active and past their expiry at `now`,
  and drop them from the expiry index. Their concurrency slots need no work: a pool stops counting
  a lease at its expiry ms (includes/pool.lua). Their budget reservation stays spent (the actual
  cost is unknown). Leases settled or extended meanwhile are left alone.

  KEYS[1]   lease expiry index (ZSET)
  KEYS[2…]  per lease, in ARGV order: the lease's hash (one per admission call)

  ARGV[1]   now in ms (from expired-1)
  ARGV[2]   retention of the finished lease record in ms
  ARGV[3…]  per lease: lease id, its field in the lease hash

  Returns   JSON [ {i = leaseId, j, a, t, y, r = reserved, e = expiresAt} … ] for the leases it expired
]]
local rcall = redis.call
local now = tonumber(ARGV[1])
-- @include lease-record
local out = {}
local k = 2
for a = 3, #ARGV, 2 do
  local leaseId = ARGV[a]
  local field = ARGV[a + 1]
  local lease = KEYS[k]
  k = k + 1
  local raw = rcall('HGET', lease, field)
  local v = raw and lease_read(raw)
  if not v or v.st ~= 'active' then
    rcall('ZREM', KEYS[1], leaseId)
  elseif v.exp <= now then
    rcall('ZREM', KEYS[1], leaseId)
    lease_write(lease, field, v, 'expired', v.exps, v.out, v.act, string.format('%.0f', now), tonumber(ARGV[2]))
    out[#out + 1] = { i = leaseId, j = v.job, a = v.att, t = v.ten, y = v.typ, r = v.res, e = v.exp }
  end
end
if #out == 0 then return '[]' end
return cjson.encode(out)
