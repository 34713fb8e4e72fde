--[[
  attach-n — counts running jobs in limits a policy change gave them after they were admitted
  (CONTRACT §6.1: "a limit added while jobs run counts those jobs"); src/attach.ts calls it for the
  live leases concerned whenever a limiter applies such a change:
  - a dependency added to their job type: each lease gets the concurrency pools it lacks — counted
    at its expiry, so that extend, settle, revoke and the reaper move and free them as any lease's —
    and its record's `conc` field names them. A pool the record already names is left alone.
  - a budget given to their tenant: a lease without a budget (`bk` empty) reserves its estimate in
    the budget's current window (includes/budget.lua, as admission does, without checking the limit:
    the job runs already), and its record gets `bk`, `res` and `bw`, so that settle charges its
    actual cost, revoke gives it back and the reaper keeps it, as for any lease. A lease with a
    budget is left alone.
  So attaching twice, or from every instance at once, counts nothing twice. A lease settled, revoked
  or expired meanwhile is skipped. Nothing is written while the state is lost (the epoch is
  missing): a rebuild counts every live lease under the policy of its time.

  KEYS[1]   epoch
  KEYS[2…]  per lease: its call's lease hash, then nPools × (pool HASH, pool ZSET), then the tenant's
            budget HASH when budgetPeriodMs is not 0

  ARGV[1]   now in ms, or 0 to use Redis TIME
  ARGV[2…]  per lease: its field in the hash, nPools, budgetPeriodMs (0: none), the estimate to reserve

  Returns   { ATTACH_ANSWER_OK, leases given a pool or a budget, pools added, leases given a budget }
            or { ATTACH_ANSWER_STATE_LOST } (nothing written)
]]
local rcall = redis.call
-- @include codes
-- @include now-from-argv
-- @include pool
-- @include lease-record
-- @include budget
if rcall('EXISTS', KEYS[1]) == 0 then return { ATTACH_ANSWER_STATE_LOST } end

-- Where things are in a record (layout in src/lease-record.ts): the position after the `fields`-th
-- `|` of the head, and from a position, the one after `n` length-prefixed segments.
local function after_fields(raw, fields)
  local pos = 1
  for _ = 1, fields do pos = string.find(raw, '|', pos, true) + 1 end
  return pos
end
local function after_segments(raw, pos, n)
  for _ = 1, n do
    local c = string.find(raw, ':', pos, true)
    pos = c + 1 + tonumber(string.sub(raw, pos, c - 1))
  end
  return pos
end

-- The record with its conc field (the 4th length-prefixed segment after the ten head fields)
-- replaced by `conc`.
local function with_conc(raw, conc)
  local at = after_segments(raw, after_fields(raw, 10), 3)
  return string.sub(raw, 1, at - 1) .. #conc .. ':' .. conc .. string.sub(raw, after_segments(raw, at, 1))
end

-- The record with its budget fields set: res and bw (the 9th and 10th head fields) and bk (the
-- 3rd length-prefixed segment after them), all empty or 0 before (a lease without a budget).
local function with_budget(raw, res, bw, bk)
  local head = after_fields(raw, 8)
  local segs = after_fields(raw, 10)
  local at = after_segments(raw, segs, 2)
  return string.sub(raw, 1, head - 1) .. fmt(res) .. '|' .. fmt(bw) .. '|' .. string.sub(raw, segs, at - 1) .. #bk .. ':' .. bk .. string.sub(raw, after_segments(raw, at, 1))
end

local leases, pools, budgets = 0, 0, 0
local k, a = 2, 2
while a <= #ARGV do
  local hash, field, nPools = KEYS[k], ARGV[a], tonumber(ARGV[a + 1])
  local periodMs, amount = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local raw = rcall('HGET', hash, field)
  local v = raw and lease_read(raw)
  if v and lease_held(v) and v.exp > now then
    local held = {}
    for key in string.gmatch(v.conc, '%S+') do held[key] = true end
    local conc, added = v.conc, 0
    for p = 1, nPools do
      local H, X = KEYS[k + 2 * p - 1], KEYS[k + 2 * p]
      if not held[H] then
        held[H] = true
        pool_add(H, X, v.exp, 1)
        conc = conc == '' and (H .. ' ' .. X) or (conc .. ' ' .. H .. ' ' .. X)
        added = added + 1
      end
    end
    local rec = raw
    if added > 0 then rec = with_conc(rec, conc) end
    local budgeted = periodMs > 0 and v.bk == ''
    if budgeted then
      local bk = KEYS[k + 2 * nPools + 1]
      local window = now - now % periodMs
      budget_charge(bk, window, periodMs, amount, now)
      rec = with_budget(rec, amount, window, bk)
      budgets = budgets + 1
    end
    if added > 0 or budgeted then
      rcall('HSET', hash, field, rec)
      leases = leases + 1
      pools = pools + added
    end
  end
  k = k + 1 + 2 * nPools + (periodMs > 0 and 1 or 0)
  a = a + 4
end
return { ATTACH_ANSWER_OK, leases, pools, budgets }
