--[[
  state-restore-n — writes part of a rebuilt state after Redis lost it, for the holder of the rebuild
  lock only (state-lock-1), while admission is still closed (the epoch is missing). A rebuild sends
  its state in several calls, then opens admission with state-open-3; every write here is
  idempotent, so a rebuild taken over from a holder that died mid-way simply writes again.

  Items (each names its KEYS in order, from KEYS[4] on):
    lease   a lease record, written as admit-n writes it (its call's hash, field <n>; layout in
            src/lease-record.ts), ACTIVE with its durable expiry, by includes/lease-put.lua: left
            alone if it exists, else counted in its pools and entered in the expiry index.
            KEYS: the lease hash, then nPools × (pool HASH, pool ZSET)
    budget  a tenant's budget window: HASH w = window start, u = used, p = periodMs, l = limit (as admit-n writes it);
            skipped when that window is over.  KEYS: the budget hash
    idem    an idempotency record: HASH r = record, x = expiresAt (as admit-n writes it); skipped
            when expired.  KEYS: the idempotency hash
    credits a tenant's prepaid credits (includes/credits.lua), from PostgreSQL's ledger: b = the
            ledger's balance less the orphaned reservations charged here, r = reserved, and
            @<lease id> per restored lease that holds a reservation. An orphaned reservation (its
            lease is not restored and the ledger has no settle or release for it: that movement
            was lost with the outbox) is charged at its estimate, conservatively, with 'settle'
            (and 'overrun') outbox entries; a restored lease whose reserve entry was lost
            reserves its estimate again with a 'reserve' entry. Entry ids are the movements' own,
            so writing twice (a rebuild taken over) records each once.
            KEYS: the credits hash, the credits outbox
    topup   a top-up marker (as credits-topup-4 writes it: '<amount> <at>'), from the ledger's
            top-up entry, so that its Idempotency-Key stays a replay; skipped when expired.
            KEYS: the marker
    window  a sliding window's units (rate `kind: "window"`, includes/pool.lua) from the attempts
            admitted within its period: per expiry ms (admittedAt + periodMs), the units counted
            there, written as a count (not added: writing twice counts once); expiries at or
            before now are skipped.  KEYS: the window pool HASH, its expiry ZSET
    bucket  a rate bucket restarted EMPTY at now (t = 0, ts = now: it refills from here; a missing
            bucket would read as full), with the period, refill and cap it is scaled by
            (includes/bucket.lua).  KEYS: the bucket hash

  KEYS[1]   epoch
  KEYS[2]   the rebuild lock
  KEYS[3]   lease expiry index (ZSET)
  KEYS[4…]  the items' keys, in item order

  ARGV[1]   now in ms, or 0 to use Redis TIME
  ARGV[2]   the caller's lock token
  ARGV[3]   retention of finished lease records in ms
  ARGV[4…]  items, each its kind then its values:
              'lease', nPools, leaseId, field, expiresAt, record
              'budget', windowStart, used, periodMs, limit
              'idem', record, expiresAt
              'bucket', capacity (× periodMs, includes/bucket.lua), refill (units per ms), periodMs
              'window', n, n × (expiresAt, units)
              'credits', tenant, balance, reserved — the account (keys: its hash, the outbox)
              'creditsres', tenant, n, n × (leaseId, amount, jobId, attempt, 1 when its reserve entry
                is missing) — reservations of live leases, in chunks (keys: the hash, the outbox)
              'creditsorph', tenant, n, n × (leaseId, amount, jobId, attempt) — reservations whose
                lease is gone: charged at their estimate, in order (keys: the hash, the outbox)
              'topup', marker value, expiresAt

  Returns   { RESTORE_ANSWER_OK, leases written, leases found already written, budgets, idempotency records, buckets, window entries }
            or { RESTORE_ANSWER_LOCK_LOST } (the lock is not the caller's: nothing written)
            or { RESTORE_ANSWER_STATE_OPEN } (the epoch exists: the state is trusted again, nothing written)
]]
local rcall = redis.call
-- @include codes
-- @include fmt
-- @include now-from-argv
-- @include pool
-- @include bucket
-- @include lease-put
-- @include credits
if rcall('EXISTS', KEYS[1]) == 1 then return { RESTORE_ANSWER_STATE_OPEN } end
if rcall('GET', KEYS[2]) ~= ARGV[2] then return { RESTORE_ANSWER_LOCK_LOST } end
local retention = tonumber(ARGV[3])
local leases, existing, budgets, idems, buckets, windows = 0, 0, 0, 0, 0, 0
local k, a = 4, 4
while a <= #ARGV do
  local kind = ARGV[a]
  if kind == 'lease' then
    local nPools, leaseId, field, exp, record = tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], tonumber(ARGV[a + 4]), ARGV[a + 5]
    if lease_put(KEYS[k], field, leaseId, exp, record, KEYS[3], retention, KEYS, k + 1, nPools) then
      leases = leases + 1
    else
      existing = existing + 1
    end
    k = k + 1 + 2 * nPools
    a = a + 6
  elseif kind == 'budget' then
    local ws, used, period, limit = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
    if ws + period > now then
      rcall('HSET', KEYS[k], 'w', fmt(ws), 'u', fmt(used), 'p', fmt(period), 'l', fmt(limit))
      -- kept until its window ended and what it used over the limit is paid back (includes/budget.lua)
      local periods = 1
      if limit > 0 and used > limit then periods = math.ceil(used / limit) end
      rcall('PEXPIRE', KEYS[k], ws + periods * period - now + period + 60000)
      budgets = budgets + 1
    end
    k = k + 1
    a = a + 5
  elseif kind == 'idem' then
    local record, exp = ARGV[a + 1], tonumber(ARGV[a + 2])
    if exp > now then
      rcall('HSET', KEYS[k], 'r', record, 'x', fmt(exp))
      rcall('PEXPIRE', KEYS[k], exp - now)
      idems = idems + 1
    end
    k = k + 1
    a = a + 3
  elseif kind == 'topup' then
    local value, exp = ARGV[a + 1], tonumber(ARGV[a + 2])
    if exp > now then rcall('SET', KEYS[k], value, 'PX', exp - now) end
    k = k + 1
    a = a + 3
  elseif kind == 'bucket' then
    local cap, refill, period = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    bucket_write(KEYS[k], 0, now, period, refill, cap)
    -- as admit-n keeps a bucket: twice the time it takes to refill, plus a minute
    rcall('PEXPIRE', KEYS[k], math.ceil(cap / refill) * 2 + 60000)
    buckets = buckets + 1
    k = k + 1
    a = a + 4
  elseif kind == 'window' then
    local H, X, n = KEYS[k], KEYS[k + 1], tonumber(ARGV[a + 1])
    local p = a + 2
    for _ = 1, n do
      local exp, units = tonumber(ARGV[p]), tonumber(ARGV[p + 1])
      if exp > now then
        local e = fmt(exp)
        local more = units - (tonumber(rcall('HGET', H, e)) or 0)
        if more > 0 then pool_add(H, X, exp, more) end
        windows = windows + 1
      end
      p = p + 2
    end
    k = k + 2
    a = p
  elseif kind == 'credits' then
    rcall('HSET', KEYS[k], 'b', fmt(tonumber(ARGV[a + 2])), 'r', fmt(tonumber(ARGV[a + 3])))
    k = k + 2
    a = a + 4
  elseif kind == 'creditsres' then
    local tenant, n = ARGV[a + 1], tonumber(ARGV[a + 2])
    local key, outbox = KEYS[k], KEYS[k + 1]
    local fields = {}
    local p = a + 3
    for _ = 1, n do
      local leaseId, amount, job, att, missing = ARGV[p], ARGV[p + 1], ARGV[p + 2], ARGV[p + 3], ARGV[p + 4]
      fields[#fields + 1] = '@' .. leaseId
      fields[#fields + 1] = amount
      if missing == '1' then credits_out(outbox, credits_entry_id(job, att, 'reserve', leaseId), tenant, 'reserve', tonumber(amount), job, att, leaseId, now) end
      p = p + 5
    end
    if #fields > 0 then rcall('HSET', key, unpack(fields)) end
    k = k + 2
    a = p
  elseif kind == 'creditsorph' then
    local tenant, n = ARGV[a + 1], tonumber(ARGV[a + 2])
    local key, outbox = KEYS[k], KEYS[k + 1]
    local b = tonumber(rcall('HGET', key, 'b')) or 0
    local p = a + 3
    for _ = 1, n do
      local leaseId, amount, job, att = ARGV[p], tonumber(ARGV[p + 1]), ARGV[p + 2], ARGV[p + 3]
      b = b - amount
      local over = 0
      if b < 0 then
        over = -b
        b = 0
      end
      credits_out(outbox, credits_entry_id(job, att, 'settle', leaseId), tenant, 'settle', amount, job, att, leaseId, now)
      if over > 0 then credits_out(outbox, credits_entry_id(job, att, 'overrun', leaseId), tenant, 'overrun', over, job, att, leaseId, now) end
      p = p + 4
    end
    rcall('HSET', key, 'b', fmt(b))
    k = k + 2
    a = p
  else
    return redis.error_reply('state-restore: unknown item kind ' .. tostring(kind))
  end
end
return { RESTORE_ANSWER_OK, leases, existing, budgets, idems, buckets, windows }
