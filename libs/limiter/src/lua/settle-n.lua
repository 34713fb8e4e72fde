--[[
  settle-n — finish an active lease exactly once: free every concurrency slot it holds, settle its
  budget reservation (actual minus estimate, in the window where it was reserved, if that window is
  still current) and, when the actual cost is known, its costRate buckets (CONTRACT §3): each
  bucket's share of the actual cost replaces what admission took from it. Cost above the estimate
  is taken from the bucket, which may go below zero (debt: later admissions wait until it has
  refilled); cost below it is given back, never beyond the bucket's capacity. A bucket's share is
  actual × its amount / the job's estimate (the request's cost overrides every dependency cost, so
  then every bucket gets the whole actual cost; an estimate of 0 likewise). A bucket is changed in
  the scale it is stored in (includes/bucket.lua: after a change of periodMs the record's amounts
  are converted, rounded towards the bucket holding fewer tokens), refilled at its stored rate.
  Its costRate windows alike: the job's entry in each window (its units at expiry admittedAt +
  periodMs) becomes its share of the actual cost (the same share rule), at the same expiry, so the
  window may hold more than its limit or less. What a settle puts over the limit is the window's
  debt: that part of the entry leaves ceil(over / limit) periods later (as a bucket's debt refills
  at the limit per period), so the limit per period holds over time. An entry that has already left
  the window is not touched; an entry without the limit (written before it was recorded) carries
  no debt. A lease admitted by a version that did not
  record its window entries leaves its windows as they are. An unknown, expired or already finished
  lease changes nothing.

  A lease counts as live if it was unexpired when the outcome was REPORTED (ARGV[8], its JetStream
  timestamp), not only when it is processed: a success published in time settles even when the
  scheduler reads it after the expiry (the reaper leaves such a lease alone until every outcome
  published before its expiry has been processed: libs/execution outcome-horizon.ts). A lease the
  reaper has marked expired stays expired. Everything else (buckets, budget window, `fin`) uses `now`.

  KEYS[1]   the lease's hash (one per admission call; see admit-n.lua and src/lease-record.ts)
  KEYS[2]   lease expiry index (ZSET)
  KEYS[3]   tenant budget hash (the lease's `bk`), or the lease key again when it has none
  KEYS[4]   the tenant's credits hash (includes/credits.lua): if the lease reserved credits
            (@<lease id>), the reservation is dropped and the actual cost (the estimate when
            unknown) charged, never below a balance of 0 (the rest is an overrun)
  KEYS[5]   the credits outbox (STREAM)
  KEYS[6…]  the concurrency pools the lease holds (its `conc` field: HASH, ZSET per pool; includes/pool.lua),
            ARGV[7] keys, then per costRate entry of its `rate` field, in record order: a bucket's key
            (entries with an estimate), or a window's pool HASH and expiry ZSET ('key window …' entries),
            then its idempotency records (its `idem` field; a pending lease's lose their 'in progress' mark)

  ARGV[1]   now in ms, or 0 to use Redis TIME
  ARGV[2]   lease id
  ARGV[3]   the lease's field in KEYS[1]
  ARGV[4]   outcome (succeeded | failed | timed_out)
  ARGV[5]   actual cost, or -1 when unknown (then the estimate stands)
  ARGV[6]   retention of the finished lease record in ms
  ARGV[7]   number of concurrency pool KEYS (from KEYS[6])
  ARGV[8]   when the outcome was reported (its JetStream timestamp), in ms; 0 (or later than now):
            now. The lease must have been unexpired at that time.

  Returns   JSON {s = LEASE_ANSWER_OK (1), j, a, t, y, r = reserved, c = actual, at = now, and when the
            lease reserved credits: cr = credits reserved, cc = charged, co = overrun, cb = balance after}
            or {s = LEASE_ANSWER_UNKNOWN (-1) | _EXPIRED (-2) | _ALREADY_SETTLED (-3, also when revoked)}
]]
local rcall = redis.call
-- @include now-from-argv
-- @include lease-record
-- @include pool
-- @include bucket
-- @include budget
-- @include credits
local field = ARGV[3]
local reportedAt = tonumber(ARGV[8]) or 0
if reportedAt <= 0 or reportedAt > now then reportedAt = now end
local v, failure = lease_live(KEYS[1], field, reportedAt)
if not v then return cjson.encode({ s = failure }) end

local leaseId = ARGV[2]
if v.st == 'pending' then lease_confirm_idem(v) end
local costAt = 6 + tonumber(ARGV[7])
for i = 6, costAt - 1, 2 do pool_remove(KEYS[i], KEYS[i + 1], v.exp) end
rcall('ZREM', KEYS[2], leaseId)

local reserved = v.res
local actual = tonumber(ARGV[5])
if actual >= 0 then
  -- the record's costRate entries: 'key amount capacity refill estimate periodMs' for a bucket (amount
  -- and capacity scaled by periodMs, includes/bucket.lua), 'key window amount estimate periodMs
  -- [limit]' for a window (amount in units); job rate entries ('key amount capacity refill') are not charged
  local k = costAt
  for entry in string.gmatch(v.rate, '[^,]+') do
    local amount, cap, refill, est, period = string.match(entry, '^%S+ (%d+) (%d+) (%d+) (%d+) (%d+)$')
    if amount then
      local key = KEYS[k]
      k = k + 1
      amount, cap, refill, est, period = tonumber(amount), tonumber(cap), tonumber(refill), tonumber(est), tonumber(period)
      local share
      if est == 0 or amount == est * period then share = actual * period else share = math.floor(amount / period * actual / est * period) end
      local delta = share - amount   -- > 0: take more (debt allowed); < 0: give back (up to capacity)
      if delta ~= 0 then
        local tokens, ts, p, r, c = bucket_state(key, now, cap, refill)
        if tokens == nil then tokens, ts, p, r, c = cap, now, period, refill, cap end   -- a missing bucket is full
        -- stored at another period (the policy changed it since admission): the delta in that scale,
        -- rounded up (more taken, less given back)
        if p and p ~= period then delta = math.ceil(delta * p / period) end
        local left = math.min(c, tokens - delta)
        if left ~= tokens then
          bucket_write(key, left, math.max(now, ts), p, r, c)
          rcall('PEXPIRE', key, math.ceil((c - left) / r) * 2 + 60000)
        end
      end
    else
      local wamount, west, wperiod, wlimit = string.match(entry, '^%S+ window (%d+) (%d+) (%d+) ?(%d*)$')
      if wamount then
        local H, X = KEYS[k], KEYS[k + 1]
        k = k + 2
        wamount, west, wperiod, wlimit = tonumber(wamount), tonumber(west), tonumber(wperiod), tonumber(wlimit)
        local wshare
        if west == 0 or wamount == west then wshare = actual else wshare = math.floor(wamount * actual / west) end
        local exp = v.adm + wperiod
        -- the entry leaves the window periodMs after admission, whatever its size; once left, nothing to change
        if wshare ~= wamount and exp > now then
          pool_adjust(H, X, exp, wshare - wamount)
          -- More than the estimate, and the window now holds more than its limit: admission could not
          -- know, and let others in at their estimates. The part over the limit is the window's debt:
          -- it leaves as many periods later as it has limits' worth (a bucket's debt, refilled at
          -- the limit per period), so that over time the window admits no more than its limit per
          -- period, instead of the overrun again every period.
          if wshare > wamount and wlimit and wlimit > 0 then
            local over = pool_live(H, X, now) - wlimit
            if over > 0 then
              local moved = math.min(over, wshare - wamount)
              pool_adjust(H, X, exp, -moved)
              pool_add(H, X, exp + wperiod * math.ceil(over / wlimit), moved)
            end
          end
        end
      end
    end
  end
end
local cr, cc, co, cb = credits_finish(KEYS[4], KEYS[5], leaseId, v, actual, now)
if actual < 0 then actual = reserved end
if v.bk ~= '' and actual ~= reserved then budget_adjust(KEYS[3], v.bw, actual - reserved, now) end

lease_write(KEYS[1], field, v, 'settled', v.exps, ARGV[4], fmt(actual), fmt(now), tonumber(ARGV[6]))
return cjson.encode({ s = LEASE_ANSWER_OK, j = v.job, a = v.att, t = v.ten, y = v.typ, r = reserved, c = actual, at = now, cr = cr, cc = cc, co = co, cb = cb })
