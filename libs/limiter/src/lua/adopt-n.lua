--[[
  adopt-n — writes the lease records of jobs admitted while Redis could not be reached (a fail-open
  dependency: admitted without the limiter, docs/guarantees.md §1), once Redis answers, so
  that claim, extend, settle and the reaper treat them as any other lease and their concurrency
  pools count them from now on. Each lease is written by includes/lease-put.lua: a record that
  exists (adopted before, by this or another instance) is left alone, so adopting twice counts
  nothing twice. A fail-open job's lease started before anything could count it: its expiry is at
  least `minMs` from now (the job type's timeout and a grace for the waiting worker's next claim),
  so that a job still waiting for a worker's claim gets its whole lease. A job of a tenant with a
  budget reserves its estimate in the budget's current window when its record is written (the
  record names the reservation and window, so settle charges the actual cost as for any lease); so
  does a tenant with prepaid credits (its reservation goes to the credits outbox, as admission's
  does; the balance is not checked: the job was admitted). It drew no rate tokens, and none are
  taken. Nothing is written while the state is lost (the epoch is
  missing): a rebuild writes every live lease then.

  KEYS[1]   epoch
  KEYS[2]   lease expiry index (ZSET)
  KEYS[3]   the credits outbox (STREAM; includes/credits.lua)
  KEYS[4…]  per lease: its call's lease hash, then nPools × (pool HASH, pool ZSET), then its
            tenant's budget HASH when it reserves budget, then its tenant's credits HASH when it
            may reserve credits

  ARGV[1]   now in ms, or 0 to use Redis TIME
  ARGV[2]   retention of finished lease records in ms
  ARGV[3…]  per lease: nPools, leaseId, field, expiresAt, minMs, record (its head's expiry is
            rewritten when the expiry moves), the budget it reserves (0: none), the budget window
            start and the budget's periodMs (as its record says), the credits it reserves if its
            tenant has an account (0: none), and its job id, attempt and tenant (for the outbox)

  Returns   { ADOPT_ANSWER_OK, leases written, leases found already written }
            or { ADOPT_ANSWER_STATE_LOST } (nothing written)
]]
local rcall = redis.call
-- @include codes
-- @include fmt
-- @include now-from-argv
-- @include pool
-- @include budget
-- @include credits
-- @include lease-put
if rcall('EXISTS', KEYS[1]) == 0 then return { ADOPT_ANSWER_STATE_LOST } end
local retention = tonumber(ARGV[2])
local written, existing = 0, 0
local outbox = KEYS[3]
local k, a = 4, 3
while a <= #ARGV do
  local nPools, leaseId, field, exp, minMs, record = tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), ARGV[a + 5]
  local reserve, window, period = tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7]), tonumber(ARGV[a + 8])
  local creditsEst, job, att, tenant = tonumber(ARGV[a + 9]), ARGV[a + 10], ARGV[a + 11], ARGV[a + 12]
  if exp < now + minMs then
    exp = now + minMs
    record = string.gsub(record, '^([^|]*)|[^|]*|', '%1|' .. fmt(exp) .. '|', 1)
  end
  local after = k + 1 + 2 * nPools
  local budgetKey = reserve > 0 and KEYS[after] or nil
  if budgetKey then after = after + 1 end
  local creditsKey = creditsEst > 0 and KEYS[after] or nil
  if creditsKey then after = after + 1 end
  if lease_put(KEYS[k], field, leaseId, exp, record, KEYS[2], retention, KEYS, k + 1, nPools) then
    written = written + 1
    if budgetKey then budget_charge(budgetKey, window, period, reserve, now) end
    if creditsKey then credits_reserve(creditsKey, outbox, leaseId, creditsEst, tenant, job, att, now) end
  else
    existing = existing + 1
  end
  k = after
  a = a + 13
end
return { ADOPT_ANSWER_OK, written, existing }
