--[[
  credits — a tenant's prepaid balance (CONTRACT §2 Tenant "Credits"; docs/credits.md), shared by
  admit, settle, revoke, reap, adopt and top-up; inlined where a script says `-- @include credits`.
  Expects `rcall` and fmt.

  HASH  b            balance (cost units; never below 0). The tenant has a credit account iff b exists.
        r            reserved: the sum of the @ fields
        @<leaseId>   the estimate that live lease reserved (deleted when it settles or is released)

  Every movement is appended, in the same atomic step, to the outbox STREAM (a namespace key) that
  a relay publishes to the ledger stream (src/credits.ts): fields e = entry id (the JetStream msgID),
  t = tenant, k = kind (topup | reserve | settle | overrun | release), n = amount, j = job id,
  a = attempt, l = lease id ('' for a top-up), at = Redis ms.
]]

-- The ledger entry id of a lease's movement: '<jobId>.<attempt>.credits.<kind>.<leaseId>'. The
-- lease id keeps two admissions of one attempt apart (a revoked admission retried as the same attempt).
local function credits_entry_id(job, att, kind, leaseId)
  return job .. '.' .. att .. '.credits.' .. kind .. '.' .. leaseId
end

local function credits_out(outbox, id, tenant, kind, amount, job, att, leaseId, now)
  rcall('XADD', outbox, '*', 'e', id, 't', tenant, 'k', kind, 'n', fmt(amount), 'j', job, 'a', tostring(att), 'l', leaseId, 'at', fmt(now))
end

-- Reserves `est` for lease `leaseId` of a tenant with a credit account, as admission does but
-- without checking the balance (the job was admitted already: adopt-n); once per lease. Returns
-- true when reserved.
local function credits_reserve(key, outbox, leaseId, est, tenant, job, att, now)
  if rcall('HEXISTS', key, 'b') == 0 then return false end
  if rcall('HSETNX', key, '@' .. leaseId, fmt(est)) == 0 then return false end
  local r = (tonumber(rcall('HGET', key, 'r')) or 0) + est
  rcall('HSET', key, 'r', fmt(r))
  credits_out(outbox, credits_entry_id(job, att, 'reserve', leaseId), tenant, 'reserve', est, job, att, leaseId, now)
  return true
end

-- Finishes the credit reservation of lease `leaseId` (record v). A settle (`actual` a number) drops
-- the reservation and charges `actual` (the estimate when it is below 0: unknown), the balance never
-- going below 0 (the charge beyond it is an overrun); a release (`actual` nil: revoked or expired)
-- drops it and charges nothing. Returns reserved, charged, overrun, balance after; nil when the
-- lease reserved no credits (or its reservation was already finished).
local function credits_finish(key, outbox, leaseId, v, actual, now)
  local f = '@' .. leaseId
  local st = rcall('HMGET', key, f, 'b', 'r')
  local est = tonumber(st[1])
  if not est then return nil end
  local b, r = tonumber(st[2]) or 0, tonumber(st[3]) or 0
  r = r - est
  if r < 0 then r = 0 end
  rcall('HDEL', key, f)
  if actual == nil then
    rcall('HSET', key, 'r', fmt(r))
    credits_out(outbox, credits_entry_id(v.job, v.att, 'release', leaseId), v.ten, 'release', est, v.job, v.att, leaseId, now)
    return est, 0, 0, b
  end
  if actual < 0 then actual = est end
  b = b - actual
  local over = 0
  if b < 0 then
    over = -b
    b = 0
  end
  rcall('HSET', key, 'b', fmt(b), 'r', fmt(r))
  credits_out(outbox, credits_entry_id(v.job, v.att, 'settle', leaseId), v.ten, 'settle', actual, v.job, v.att, leaseId, now)
  if over > 0 then credits_out(outbox, credits_entry_id(v.job, v.att, 'overrun', leaseId), v.ten, 'overrun', over, v.job, v.att, leaseId, now) end
  return est, actual, over, b
end
