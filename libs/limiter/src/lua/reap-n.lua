--[[
  reap-n — atomically finish leases that are still held and past their expiry at `now`, and drop
  their entries from the expiry index. Their concurrency slots need no work: a pool stops counting
  a lease at its expiry ms (includes/pool.lua). Their budget reservation stays spent (the actual
  cost is unknown), but their credit reservation is released (includes/credits.lua: no cost is
  charged for an attempt without an outcome). Leases settled, revoked or extended meanwhile are left alone.

  A confirmed ('active' or 'running') lease is marked 'expired': its job message is in the stream, so the
  caller publishes a timed_out outcome for it. A lease still 'pending' (its job message was never
  confirmed in JetStream: the admitting instance died) or 'withdrawn' (answered 503 while its
  message may have been stored, withdraw-n.lua) is marked 'revoked'
  and its idempotency records are deleted: it is no attempt, and the key may be used again. Each
  listed lease says which (`u`).

  The expiry index holds one entry per admission call and expiry, '<call id>@<expiresAt>' (every
  lease the call wrote with that expiry), plus '<lease id>' for a lease that was extended. A call
  entry is removed once none of the call's leases is held and past its expiry; an extended lease
  is reaped through its own entry.

  KEYS[1]   lease expiry index (ZSET)
  KEYS[2]   the credits outbox (STREAM)
  KEYS[3…]  per entry, in ARGV order: the lease hash of its call, then the idempotency records of
            its pending leases (from the dry run's `k`) and the credits hashes of its leases' tenants
            (the script names them `ARGV[5] .. tenant .. ':credits'`)

  ARGV[1]   now in ms (from expired-1)
  ARGV[2]   retention of the finished lease record in ms
  ARGV[3]   reap at most this many leases
  ARGV[4]   '1': dry run — change nothing, list what would be reaped, and take whole entries only
            (an entry is started only while the budget lasts, then listed completely), so that a
            later run with the same `now` over those entries marks a subset of what was listed
  ARGV[5]   the credits key prefix ('<ns>:{<ns>}:tenant:')
  ARGV[6…]  per entry: the index member, the lease's field ('' for a call entry), and the number of
            KEYS that follow its lease hash

  Returns   JSON [ {i = leaseId, j, a, t, y, r = reserved, e = expiresAt, x = context, m = member,
            u = 1 when the lease was pending, k = its idempotency keys (space-separated)} … ]
]]
local rcall = redis.call
local now = tonumber(ARGV[1])
local retention = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local dry = ARGV[4] == '1'
-- @include fmt
-- @include lease-record
-- @include credits
local cprefix = ARGV[5]
local out = {}
-- The credits hashes this call may touch are among KEYS (the caller passes those of the tenants the
-- dry run listed); a name built here is only ever used after it was found there.
local passed = {}
for i = 3, #KEYS do passed[KEYS[i]] = true end

-- held (active, pending) or withdrawn (pending, answered 503: withdraw-n.lua)
local function reapable(v)
  return lease_held(v) or v.st == 'withdrawn'
end

local function expire(lease, field, v, leaseId, member)
  local pending = v.st == 'pending' or v.st == 'withdrawn'
  if not dry then
    local ck = cprefix .. v.ten .. ':credits'
    if not passed[ck] then error('reap-n: the credits hash of tenant ' .. v.ten .. ' was not passed in KEYS') end
    credits_finish(ck, KEYS[2], leaseId, v, nil, now)
    if pending then
      for key in string.gmatch(v.idem, '%S+') do rcall('DEL', key) end
      lease_write(lease, field, v, 'revoked', v.exps, v.out, v.act, fmt(now), retention)
    else
      lease_write(lease, field, v, 'expired', v.exps, v.out, v.act, fmt(now), retention)
    end
  end
  local o = { i = leaseId, j = v.job, a = v.att, t = v.ten, y = v.typ, r = v.res, e = v.exp, x = v.ctx, m = member }
  if pending then
    o.u = 1
    o.k = v.idem
  end
  out[#out + 1] = o
  budget = budget - 1
end

local k = 3
for a = 6, #ARGV, 3 do
  local member, field, lease = ARGV[a], ARGV[a + 1], KEYS[k]
  k = k + 1 + tonumber(ARGV[a + 2])
  if dry then
    if budget > 0 then
      if field ~= '' then
        local raw = rcall('HGET', lease, field)
        local v = raw and lease_read(raw)
        if v and reapable(v) and v.exp <= now then expire(lease, field, v, member, member) end
      else
        local callId = string.match(member, '^(.*)@')
        local all = rcall('HGETALL', lease)
        for i = 1, #all, 2 do
          local v = lease_read(all[i + 1])
          if v and reapable(v) and v.exp <= now then expire(lease, all[i], v, callId .. '_' .. all[i], member) end
        end
      end
    end
  elseif field ~= '' then
    local raw = rcall('HGET', lease, field)
    local v = raw and lease_read(raw)
    if not v or not reapable(v) then
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
      if v and reapable(v) and v.exp <= now then
        if budget > 0 then expire(lease, all[i], v, callId .. '_' .. all[i], member) else left = true end
      end
    end
    if not left then rcall('ZREM', KEYS[1], member) end
  end
end
if #out == 0 then return '[]' end
return cjson.encode(out)
