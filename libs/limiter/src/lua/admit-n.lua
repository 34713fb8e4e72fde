--[[
  admit-n — decide one or more admission groups in ONE atomic step.

  Each group is one AdmissionRequest: all of its jobs are admitted or none is. Groups are decided
  independently, in arrival order, against state loaded once into Lua tables and written back once
  (this coalescing is what makes admission cheap: Redis time follows keys touched, not calls).
  Per job, in the contract's order: idempotency, priority shedding, dependency, tenant, global limits
  and budget (the caller lists a job's limits in that order).

  State encodings (all integers, so Lua and TypeScript compute the same numbers):
    rate bucket  HASH t = tokens × periodMs, ts = ms of t     (refill = limit units per ms)
    concurrency  ZSET leaseId -> expiresAt; live = members with expiresAt > now
    budget       HASH w = window start ms, u = used in that window
    idempotency  HASH r = caller's record, x = expiresAt ms
    lease        HASH (see the lease fields written below)

  KEYS[1]   epoch: exists while the stored state is trustworthy
  KEYS[2]   recovering-until: Redis ms at which admission reopens after state loss
  KEYS[3]   lease expiry index (ZSET leaseId -> expiresAt)
  KEYS[4…]  limit, lease and idempotency keys, referenced by index from ARGV[1]

  ARGV[1]   JSON {
              n  = now in ms, or 0 to use Redis TIME,
              rc = recovery window in ms (used when the epoch is missing),
              rt = retention of finished lease hashes in ms,
              l  = limits: [kind (1 rate, 2 concurrency, 3 budget), keyIndex, reason,
                            capHigh, capNormal, capLow (-1 = not limited), p]
                   p = refill units per ms (rate) | periodMs (budget) | 0,
              g  = groups: [{ i = 0 | [keyIndex, record, windowMs] (request-level idempotency),
                              j = jobs: [leaseKeyIndex, leaseId, jobId, attempt, tenant, jobType,
                                         priority (1 high, 2 normal, 3 low), timeoutMs, budgetReserve,
                                         refs = [limitIndex, amount, …], idem = 0 | [keyIndex, record, windowMs],
                                         context (opaque caller string, '' for none) ] } ]
            }

  Returns   JSON. Fault: {e = -1 (state lost, recovery started) | -2 (recovering), u = until ms}.
            Otherwise {at = now, g = [ {k = 1, j = [ {e = expiresAt, b = reserved} | {d = record} ]}
                                     | {k = 2, x = failing job index (0-based), r = reason, w = retryAfterMs}
                                     | {k = 3, r = record} ] }
]]
local rcall = redis.call
local p = cjson.decode(ARGV[1])

local function fmt(n)
  return string.format('%.0f', n)
end

local now = p.n
if now == 0 then
  local t = rcall('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

if rcall('EXISTS', KEYS[1]) == 0 then
  local reopenAt = tonumber(rcall('GET', KEYS[2]))
  if not reopenAt then
    reopenAt = now + p.rc
    rcall('SET', KEYS[2], fmt(reopenAt))
    return cjson.encode({ e = -1, u = reopenAt })
  end
  if now < reopenAt then
    return cjson.encode({ e = -2, u = reopenAt })
  end
  rcall('SET', KEYS[1], fmt(now))
  rcall('DEL', KEYS[2])
end

local L = p.l
local S = {}      -- limit index -> { v = used units, ws = budget window start, dirty }
local IDEM = {}   -- key index -> committed record, or false when none is live

local function load(li)
  local s = S[li]
  if s then return s end
  local d = L[li]
  local key = KEYS[d[2]]
  if d[1] == 1 then
    local v = rcall('HMGET', key, 't', 'ts')
    local tokens = tonumber(v[1])
    if tokens == nil then
      tokens = d[4]
    else
      local ts = tonumber(v[2]) or now
      if now > ts then tokens = math.min(d[4], tokens + (now - ts) * d[7]) end
    end
    s = { v = d[4] - tokens }
  elseif d[1] == 2 then
    s = { v = rcall('ZCOUNT', key, '(' .. fmt(now), '+inf') }
  else
    local ws = now - (now % d[7])
    local v = rcall('HMGET', key, 'w', 'u')
    local used = 0
    if tonumber(v[1]) == ws then used = tonumber(v[2]) or 0 end
    s = { v = used, ws = ws }
  end
  S[li] = s
  return s
end

local function idem_get(ki)
  local r = IDEM[ki]
  if r == nil then
    local v = rcall('HMGET', KEYS[ki], 'r', 'x')
    if v[1] and tonumber(v[2]) and tonumber(v[2]) > now then r = v[1] else r = false end
    IDEM[ki] = r
  end
  return r
end

-- First failing reason of one job against state + what earlier jobs of its group took (pend).
local function check(job, pend)
  local refs, prio = job[10], job[7]
  if prio > 1 then
    for r = 1, #refs, 2 do
      local li = refs[r]
      local d = L[li]
      local cap = d[3 + prio]
      if cap >= 0 and cap < d[4] and load(li).v + (pend[li] or 0) + refs[r + 1] > cap then
        return 'shed'
      end
    end
  end
  for r = 1, #refs, 2 do
    local li = refs[r]
    local d = L[li]
    if d[4] >= 0 and load(li).v + (pend[li] or 0) + refs[r + 1] > d[4] then
      return d[3]
    end
  end
  return nil
end

-- Earliest moment the whole group could pass every rate and budget limit (concurrency: best estimate).
-- For each limit the group needs used ≤ min over its jobs of (share-capacity - units taken up to that job).
local function retry_after(g)
  local need, seen, wait = {}, {}, 0
  for _, job in ipairs(g.j) do
    local ji = job[11]
    local dup = false
    if ji ~= 0 then
      if seen[ji[1]] or idem_get(ji[1]) then dup = true else seen[ji[1]] = true end
    end
    if not dup then
      local refs = job[10]
      for r = 1, #refs, 2 do
        local li = refs[r]
        local d = L[li]
        if d[4] >= 0 then
          local n = need[li]
          if not n then
            n = { 0, d[3 + job[7]] }
            need[li] = n
          end
          n[1] = n[1] + refs[r + 1]
          local slack = d[3 + job[7]] - n[1]
          if slack < n[2] then n[2] = slack end
        end
      end
    end
  end
  for li, n in pairs(need) do
    local d = L[li]
    local s = load(li)
    local w = 0
    if s.v > n[2] then
      if d[1] == 1 then
        if n[2] < 0 then w = math.ceil(s.v / d[7]) else w = math.ceil((s.v - n[2]) / d[7]) end
      elseif d[1] == 3 then
        w = s.ws + d[7] - now
      else
        local first = rcall('ZRANGEBYSCORE', KEYS[d[2]], '(' .. fmt(now), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
        if first[2] then w = tonumber(first[2]) - now else w = 1000 end
      end
    end
    if w > wait then wait = w end
  end
  if wait < 1 then wait = 1 end
  return wait
end

local zadds = {}   -- key index -> { score, member, … }
local expiry = {}
local results = {}

for gi, g in ipairs(p.g) do
  local ri = g.i
  if ri ~= 0 and idem_get(ri[1]) then
    results[gi] = { k = 3, r = idem_get(ri[1]) }
  else
    local pend, gidem, jr, fail = {}, {}, {}, nil
    for ji, job in ipairs(g.j) do
      local idem = job[11]
      local dup = nil
      if idem ~= 0 then
        dup = gidem[idem[1]]
        if dup then dup = dup[2] else dup = idem_get(idem[1]) or nil end
      end
      if dup then
        jr[ji] = { d = dup }
      else
        local reason = check(job, pend)
        if reason then
          fail = { ji, reason }
          break
        end
        local refs = job[10]
        for r = 1, #refs, 2 do pend[refs[r]] = (pend[refs[r]] or 0) + refs[r + 1] end
        if idem ~= 0 then gidem[idem[1]] = idem end
        jr[ji] = false
      end
    end

    if fail then
      results[gi] = { k = 2, x = fail[1] - 1, r = fail[2], w = retry_after(g) }
    else
      for li, amount in pairs(pend) do
        local s = S[li]
        if s then   -- nil for tracked-only pools (never loaded); pools are written through zadds
          s.v = s.v + amount
          s.dirty = true
        end
      end
      local created = {}
      if ri ~= 0 then
        IDEM[ri[1]] = ri[2]
        rcall('HSET', KEYS[ri[1]], 'r', ri[2], 'x', fmt(now + ri[3]))
        rcall('PEXPIRE', KEYS[ri[1]], ri[3])
        created[1] = KEYS[ri[1]]
      end
      for ki, idem in pairs(gidem) do
        IDEM[ki] = idem[2]
        rcall('HSET', KEYS[ki], 'r', idem[2], 'x', fmt(now + idem[3]))
        rcall('PEXPIRE', KEYS[ki], idem[3])
      end
      for ji, job in ipairs(g.j) do
        if jr[ji] == false then
          local exp = now + job[8]
          local leaseId = job[2]
          local conc, rate = {}, {}
          local bk, bw, reserved = '', '', 0
          local refs = job[10]
          for r = 1, #refs, 2 do
            local d = L[refs[r]]
            local ki = d[2]
            if d[1] == 2 then
              conc[#conc + 1] = KEYS[ki]
              local z = zadds[ki]
              if not z then z = {}; zadds[ki] = z end
              z[#z + 1] = exp
              z[#z + 1] = leaseId
            elseif d[1] == 1 then
              rate[#rate + 1] = KEYS[ki] .. ' ' .. fmt(refs[r + 1]) .. ' ' .. fmt(d[4]) .. ' ' .. fmt(d[7])
            else
              bk, bw, reserved = KEYS[ki], fmt(S[refs[r]].ws), refs[r + 1]
            end
          end
          local idems = created
          if job[11] ~= 0 then
            idems = { KEYS[job[11][1]] }
            if #created > 0 then idems[2] = created[1] end
          end
          created = {}
          rcall('HSET', KEYS[job[1]], 'st', 'active', 'job', job[3], 'att', job[4], 'ten', job[5], 'typ', job[6],
            'pri', job[7], 'adm', fmt(now), 'exp', fmt(exp), 'conc', table.concat(conc, ' '),
            'rate', table.concat(rate, ','), 'bk', bk, 'bw', bw, 'res', fmt(reserved), 'idem', table.concat(idems, ' '), 'ctx', job[12] or '')
          rcall('PEXPIRE', KEYS[job[1]], job[8] + p.rt)
          expiry[#expiry + 1] = exp
          expiry[#expiry + 1] = leaseId
          jr[ji] = { e = exp, b = reserved }
        end
      end
      results[gi] = { k = 1, j = jr }
    end
  end
end

for li, s in pairs(S) do
  if s.dirty then
    local d = L[li]
    local key = KEYS[d[2]]
    if d[1] == 1 then
      rcall('HSET', key, 't', fmt(d[4] - s.v), 'ts', fmt(now))
      -- A missing bucket reads as full, which is the truth once it has refilled; keep it twice as long.
      rcall('PEXPIRE', key, math.ceil(s.v / d[7]) * 2 + 60000)
    elseif d[1] == 3 then
      rcall('HSET', key, 'w', fmt(s.ws), 'u', fmt(s.v))
      rcall('PEXPIRE', key, s.ws + d[7] - now + d[7] + 60000)
    end
  end
end
for ki, z in pairs(zadds) do
  rcall('ZADD', KEYS[ki], unpack(z))
end
if #expiry > 0 then
  rcall('ZADD', KEYS[3], unpack(expiry))
end

return cjson.encode({ at = now, g = results })
