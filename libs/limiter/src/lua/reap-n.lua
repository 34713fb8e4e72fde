--[[
  reap-n — atomically mark leases expired that are still active and past their expiry at `now`,
  and drop their entries from the expiry index. Their concurrency slots need no work: a pool stops
  counting a lease at its expiry ms (includes/pool.lua). Their budget reservation stays spent (the
  actual cost is unknown). Leases settled, revoked or extended meanwhile are left alone.

  The expiry index holds one entry per admission call and expiry, '<call id>@<expiresAt>' (every
  lease the call wrote with that expiry), plus '<lease id>' for a lease that was extended. A call
  entry is removed once none of the call's leases is active and past its expiry; an extended lease
  is reaped through its own entry.

  KEYS[1]   lease expiry index (ZSET)
  KEYS[2…]  per entry, in ARGV order: the lease hash of its call

  ARGV[1]   now in ms (from expired-1)
  ARGV[2]   retention of the finished lease record in ms
  ARGV[3]   reap at most this many leases
  ARGV[4]   '1': dry run — change nothing, list what would be reaped, and take whole entries only
            (an entry is started only while the budget lasts, then listed completely), so that a
            later run with the same `now` over those entries marks a subset of what was listed
  ARGV[5…]  per entry: the index member, then the lease's field ('' for a call entry)

  Returns   JSON [ {i = leaseId, j, a, t, y, r = reserved, e = expiresAt, x = context, m = member} … ]
]]
local rcall = redis.call
local now = tonumber(ARGV[1])
local retention = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local dry = ARGV[4] == '1'
-- @include fmt
-- @include lease-record
local out = {}

local function expire(lease, field, v, leaseId, member)
  if not dry then lease_write(lease, field, v, 'expired', v.exps, v.out, v.act, fmt(now), retention) end
  out[#out + 1] = { i = leaseId, j = v.job, a = v.att, t = v.ten, y = v.typ, r = v.res, e = v.exp, x = v.ctx, m = member }
  budget = budget - 1
end

local k = 2
for a = 5, #ARGV, 2 do
  local member, field, lease = ARGV[a], ARGV[a + 1], KEYS[k]
  k = k + 1
  if dry then
    if budget > 0 then
      if field ~= '' then
        local raw = rcall('HGET', lease, field)
        local v = raw and lease_read(raw)
        if v and v.st == 'active' and v.exp <= now then expire(lease, field, v, member, member) end
      else
        local callId = string.match(member, '^(.*)@')
        local all = rcall('HGETALL', lease)
        for i = 1, #all, 2 do
          local v = lease_read(all[i + 1])
          if v and v.st == 'active' and v.exp <= now then expire(lease, all[i], v, callId .. '_' .. all[i], member) end
        end
      end
    end
  elseif field ~= '' then
    local raw = rcall('HGET', lease, field)
    local v = raw and lease_read(raw)
    if not v or v.st ~= 'active' then
      rcall('ZREM', KEYS[1], member)
    elseif v.exp <= now and budget > 0 then
      rcall('ZREM', KEYS[1], member)
      expire(lease, field, v, member, member)
    end
  else
    local callId = string.match(member, '^(.*)@')
    local all = rcall('HGETALL', lease)
    local left = false
    for i = 1, #all, 2 do
      local v = lease_read(all[i + 1])
      if v and v.st == 'active' and v.exp <= now then
        if budget > 0 then expire(lease, all[i], v, callId .. '_' .. all[i], member) else left = true end
      end
    end
    if not left then rcall('ZREM', KEYS[1], member) end
  end
end
if #out == 0 then return '[]' end
return cjson.encode(out)
