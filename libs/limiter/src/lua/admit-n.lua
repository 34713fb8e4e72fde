--[[
  admit-n — decide one or more admission groups in ONE atomic step.

  Each group is one AdmissionRequest: all of its jobs are admitted or none is. Groups are decided
  independently, in arrival order, against state loaded once into Lua tables and written back once
  (this coalescing is what makes admission cheap: Redis time follows keys touched, not calls).
  Per job, in the contract's order: idempotency, priority shedding, dependency, tenant, global limits
  and budget (the caller lists a job's limits in that order). Jobs of the same tenant, job type,
  cost and priority share a "profile" (their limit list and the constant part of their lease
  record), sent once per call.

  State encodings (all integers, so Lua and TypeScript compute the same numbers):
    rate bucket  HASH t = tokens × periodMs, ts = ms of t, p/r/c = the periodMs, refill and cap it is
                 scaled by (refill = limit units per ms; includes/bucket.lua: a bucket stored at another
                 period, after a policy change, is converted, conservatively, and written back)
    concurrency  HASH n + count per expiry ms, and a ZSET of those ms (see includes/pool.lua)
    budget       HASH w = window start ms, u = used in that window, p = its periodMs (includes/budget.lua:
                 after a change of periodMs, a stored window reaching into the current one carries its use)
    window       a concurrency pool whose entries expire periodMs after admission (includes/pool.lua):
                 live entries = units admitted in the last periodMs (a sliding window, rate kind "window").
                 A costRate window's entry becomes the job's share of its actual cost at settle (same
                 expiry): it may then hold more than its limit; admissions wait until enough has left.
    guard        a dependency's cooldown, effective-rate ratio and outage circuit (includes/guard.lua).
                 Its ratio r < 1 makes each job take 1/r of the dependency's rate and window units
                 (at most the cap): the same as refilling at r × the declared rate.
    firsts/retries  a dependency's first attempts and retries per second (includes/ring.lua, one HASH);
                 a retry is admitted while retries < ratio × firsts + allowance over the last 10 s
    credits      a tenant's prepaid balance (includes/credits.lua): HASH b = balance, r = reserved,
                 @<lease id> = what that lease reserved. Loaded once per call when a profile is read;
                 a tenant without an account (no b) is neither checked nor written. Else cap = b,
                 used = r; each admitted job adds its estimate to r, writes @<lease id> and appends
                 a 'reserve' entry to the credits outbox.
    idempotency  HASH r = caller's record, x = expiresAt ms, p = '1' while the admission that wrote it
                 is pending (its job message not yet confirmed in JetStream, confirm-n.lua)
    leases       HASH per call: field <n> (the job's ordinal in the call, from 1) = the lease record
                 of lease id '<call id>_<n>'. One HSET per call instead of one key per job; the hash
                 lives until the longest lease of the call has expired plus the retention, and every
                 later rewrite of a record extends it (PEXPIRE … GT). Record layout: src/lease-record.ts
                 'st|exp|out|act|fin|adm|att|pri|res|bw|' then <bytes>:<text> for ten, typ, bk, conc,
                 rate, idem, job, then ctx (the rest of the string). st = pending|active|settled|expired|revoked
                 (written 'pending': confirm-n.lua makes it 'active' once its job message is in JetStream),
                 conc/idem = space-separated keys, rate = comma-separated 'key amount capacity refill' (a costRate
                 bucket adds 'estimate periodMs' for settle); a costRate window adds an entry
                 'key window amount estimate periodMs' (its entries expire at adm + periodMs: settle
                 replaces the estimate there by the actual cost's share).

  KEYS[1]   epoch: exists while the stored state is trustworthy
  KEYS[2]   recovering-until: after a state loss, the end of the fail-closed fallback (includes/epoch.lua)
  KEYS[3]   lease expiry index (ZSET: '<call id>@<expiresAt>' for a call's leases, '<lease id>' for an
            extended lease -> expiresAt; see reap-n.lua)
  KEYS[4]   this call's lease hash (see "leases" above)
  KEYS[5…]  limit and idempotency keys, referenced by index

  ARGV (flat):
    [1] now in ms, or 0 to use Redis TIME      [2] recovery window in ms (used when the epoch is missing)
    [3] retention of finished leases in ms     [4] nL limits   [5] nP profiles   [6] nG groups
    [7] this call's id (lease ids are '<call id>_<n>')
    [8] the limit and profile table: a JSON array of the nL limits then the nP profiles below
    then (in that JSON array) nL limits, 9 values each: kind (LIMIT_KIND_*), keyIndex, reason, capHigh, capNormal, capLow
         (NOT_LIMITED = -1; UNBOUNDED for guard, firsts, retries: their cap comes from their state), p, q, g:
           rate         p = refill units per ms, q = periodMs (the scale of its caps and amounts),
                        g = limit index of its dependency's guard (0: none)
           concurrency  p = KEYS index of the pool's expiry ZSET (keyIndex is its HASH)
           budget       p = periodMs
           window       p = KEYS index of its expiry ZSET, q = periodMs, g = as for rate
           guard        p = the dependency's minRatio in ppm, q = 1 when adaptive (else only a pause
                        applies; a job type's guard is never adaptive)
           retries      p = the budget's ratio in ppm, q = its allowance (minPerSec × 10)
           firsts       (none)
           credits      p = KEYS index of the credits outbox (a STREAM); caps UNBOUNDED (the cap is
                        the balance, from the state; no priority shares)
    then (in that JSON array) nP profiles: nRefs, priority (PRIORITY_*: 1 high, 2 normal, 3 low), nRefs × (limitIndex, amount),
         timeoutMs, idempotencyWindowMs, segment (the lease record's <bytes>:<text> fields ten, typ,
         bk, conc, rate), and the budget its jobs reserve in their tenant's shard (src/shards.ts;
         recorded as the lease's `res` when no budget of the profile is decided here; else 0)
    then (in that JSON array, optional) an array of the ordinals the call's jobs take, in order (a
         tenant shard's call mirrors its namespace's call, src/shards.ts: the same lease ids);
         without it jobs are numbered 1, 2, … across the call
    then (ARGV[9] on) nG groups: nJobs, idemKeyIndex (0 = none) [, record, windowMs when not 0], then per job:
         jobId, attempt, profileIndex, idemKeyIndex (0 = none) [, record when not 0], context
         (a record's `"admittedAt":"@"` is stamped with the admission's ms: see stamp below)
         ('' for none). Jobs are numbered 1, 2, … across the call (rejected groups' jobs included),
         unless the call gives their ordinals.

  Returns   Fault: { ADMIT_FAULT_STATE_LOST = -1 (recovery started) | ADMIT_FAULT_RECOVERING = -2, until ms }.
            Otherwise a flat array: { now, then per group one of (ADMIT_REPLY_*, src/codes.ts)
              1                                        ADMITTED: every job (expiresAt = now + timeoutMs)
              4, n, n × (job index 0-based, record)    ADMITTED_WITH_REPLAYS: those jobs were idempotent replays
              2, failing job index (0-based), reason, retryAfterMs                                 REJECTED
              3, record                                DUPLICATE: the request was an idempotent replay
              5, job index (0-based; -1: the request's key), record   IN_PROGRESS: a key names an admission
                                                       whose job message is not yet confirmed; nothing taken }
]]
local rcall = redis.call
local A = ARGV
-- @include codes
-- @include fmt
-- @include now-from-argv
-- @include epoch
-- @include bucket
-- @include pool
-- @include guard
-- @include ring
-- @include credits
-- @include budget

local fault, reopenAt = epoch_check(KEYS[1], KEYS[2], now, tonumber(A[2]))
if fault then return { fault, reopenAt } end

local retention = tonumber(A[3])
local nL, nP, nG = tonumber(A[4]), tonumber(A[5]), tonumber(A[6])
local callId = A[7]
-- The call's limit and profile table: one JSON array (cjson, in C, parses it several times faster
-- than tonumber() over as many ARGV values, and the client sends one argument instead of ~150).
local T = cjson.decode(A[8])
local tc = 1

local L = {}
for i = 1, nL do
  L[i] = { T[tc], T[tc + 1], T[tc + 2], T[tc + 3], T[tc + 4], T[tc + 5], T[tc + 6], T[tc + 7], T[tc + 8] }
  tc = tc + 9
end

-- limit index -> { v = used units, v0 = as loaded, ws = budget window start, dirty,
--   mul = units per unit asked (a guarded rate or window), cap/why/wait = the cap, reason and wait
--   that the state dictates (guard, retries), probe = a half-open guard letting one probe through }
local S = {}
local IDEM = {}   -- key index -> committed record, or false when none is live
local IDEMP = {}  -- key index -> true when that record's admission is still pending

local function load(li)
  local d = L[li]
  local key = KEYS[d[2]]
  local s
  local kind = d[1]
  if kind == LIMIT_KIND_RATE then
    local tokens, _, converted = bucket_read(key, now, d[4], d[7], d[8])
    s = { v = d[4] - (tokens or d[4]) }
    -- stored at another period (the policy changed it): written back in this one even if nothing is taken
    if converted then s.dirty = true end
  elseif kind == LIMIT_KIND_CONCURRENCY or kind == LIMIT_KIND_WINDOW then
    s = { v = pool_live(key, KEYS[d[7]], now) }
  elseif kind == LIMIT_KIND_GUARD then
    local g = guard_state(key, now)
    s = { v = 0 }
    if d[8] == 1 and g.ratio < ADAPTIVE_PPM then s.mul = ADAPTIVE_PPM / math.max(g.ratio, d[7]) end
    if d[8] == 1 then s.cu = g.cu end
    if g.paused > 0 then
      -- paused by an admin: until then, or (until resumed) ask again in a while
      local left = g.paused
      if now + left >= ADAPTIVE_PAUSED_FOREVER then left = ADAPTIVE_PAUSE_RECHECK_MS end
      s.cap, s.why, s.wait = 0, 'paused', left
    elseif d[8] ~= 1 then
      -- not adaptive: only a pause applies
    elseif g.cooldown > 0 then
      s.cap, s.why, s.wait = 0, 'dependency_rate', g.cooldown
    elseif g.circuit == 1 then
      s.cap, s.why, s.wait = 0, 'dependency_unavailable', g.wait
    elseif g.circuit == 2 then
      s.cap, s.why, s.wait, s.probe = 1, 'dependency_unavailable', ADAPTIVE_PROBE_GAP_MS, true
    end
  elseif kind == LIMIT_KIND_FIRSTS then
    s = { v = 0 }
  elseif kind == LIMIT_KIND_CREDITS then
    local v = rcall('HMGET', key, 'b', 'r')
    local b = tonumber(v[1])
    if b then
      s = { v = tonumber(v[2]) or 0, cap = b, wait = CREDITS_RETRY_AFTER_MS, acct = true, f = {} }
    else
      s = { v = 0 }
    end
  elseif kind == LIMIT_KIND_RETRIES then
    -- First attempts within the last 10 s, retries over a span covering them (ring.lua).
    local firsts, retries = ring_sum(key, now, 'f', 'r', RING_W, RING_W + 1)
    s = { v = retries, cap = math.floor(firsts * d[7] / 1000000 + d[8]), why = 'retry_budget', wait = 1000 }
  else
    local ws = now - (now % d[7])
    s = { v = budget_used(key, ws), ws = ws }
  end
  if (kind == LIMIT_KIND_RATE or kind == LIMIT_KIND_WINDOW) and d[9] > 0 then
    local g = S[d[9]] or load(d[9])
    s.mul = g.mul
    -- A bucket restarts empty when a cooldown ends: what it refilled meanwhile would go out in one
    -- burst at the very moment the dependency said it was overloaded (as if it was drained at cu).
    if kind == LIMIT_KIND_RATE and g.cu and now >= g.cu then
      local refilled = (now - g.cu) * d[7]
      if d[4] - s.v > refilled then s.v = d[4] - refilled end
    end
  end
  s.v0 = s.v
  S[li] = s
  return s
end

-- A profile's checks, flat: limitIndex, amount, cap at its priority, reason when over that cap.
-- A cap below the limit's capacity is a priority share: going over it is 'shed' (and is checked
-- even when a limit earlier in the list is over its capacity, because shedding is decided first).
-- Tracked-only pools (capacity -1) are not checked; they are only written (conc).
local P = {}
for i = 1, nP do
  local nRefs, pri = T[tc], T[tc + 1]
  tc = tc + 2
  local chk, inc, conc, res, bl, cl, cres = {}, {}, {}, 0, nil, nil, 0
  for _ = 1, nRefs do
    local li, amount = T[tc], T[tc + 1]
    tc = tc + 2
    local d = L[li]
    local checked = d[4] ~= NOT_LIMITED
    if d[1] == LIMIT_KIND_CONCURRENCY then conc[#conc + 1] = li elseif d[1] == LIMIT_KIND_BUDGET then res, bl = amount, li
    elseif d[1] == LIMIT_KIND_CREDITS then
      -- a tenant without a credit account: credits do not limit, nothing is written
      if (S[li] or load(li)).acct then cl, cres = li, amount else checked = false end
    elseif d[1] == LIMIT_KIND_GUARD then
      -- a guard that is not paused, cooling down or in outage refuses nothing in this call (its
      -- state cannot change within it): no per-job check (its ratio still scales its rates, in load)
      local g = S[li] or load(li)
      if not g.cap then checked = false end
    elseif d[1] == LIMIT_KIND_FIRSTS then
      -- first attempts are only counted (for the retry budget), never refused
      load(li)
      checked = false
      inc[#inc + 1] = li
      inc[#inc + 1] = amount
    end
    if checked then
      local cap, why = d[4], d[3]
      -- d[3 + pri]: capHigh, capNormal or capLow (PRIORITY_* are 1, 2, 3)
      if pri ~= PRIORITY_HIGH and d[3 + pri] ~= NOT_LIMITED and d[3 + pri] < d[4] then cap, why = d[3 + pri], 'shed' end
      chk[#chk + 1] = li
      chk[#chk + 1] = amount
      chk[#chk + 1] = cap
      chk[#chk + 1] = why
    end
  end
  -- a budget held in the tenant's shard (src/shards.ts): not decided here, but the lease records it
  if not bl then res = T[tc + 3] end
  P[i] = { chk = chk, inc = inc, conc = conc, res = res, bl = bl, cl = cl, cres = cres, pri = pri, t = T[tc], w = T[tc + 1], seg = T[tc + 2] }
  tc = tc + 4
end
-- A tenant shard's call mirrors its namespace's call (src/shards.ts): its jobs keep the lease ids
-- that call gave them, so the table ends with their ordinals.
local ORDS = T[tc]
local function ordinal(o)
  if ORDS then return ORDS[o] end
  return o
end

-- What check r of a profile's flat list takes of its limit (loaded): its amount, times the guard's
-- multiplier for a guarded rate or window (rounded down: the declared rate is the ceiling, the ratio a
-- target; never more than its cap, else it could never pass).
local function take(chk, r)
  local s, amount = S[chk[r]], chk[r + 1]
  if s.mul then
    local cap = chk[r + 2]
    local m = math.floor(amount * s.mul)
    if m > cap then m = math.max(amount, cap) end
    return m
  end
  return amount
end

local function idem_get(ki)
  local r = IDEM[ki]
  if r == nil then
    local v = rcall('HMGET', KEYS[ki], 'r', 'x', 'p')
    if v[1] and tonumber(v[2]) and tonumber(v[2]) > now then r = v[1] else r = false end
    IDEM[ki] = r
    IDEMP[ki] = r and v[3] == '1'
  end
  return r
end

-- First failing reason of a job of profile p against state + what earlier jobs of its group took (pend).
local function check(p, pend)
  local chk, reason = p.chk, nil
  for r = 1, #chk, 4 do
    local li = chk[r]
    local s = S[li] or load(li)
    if s.v + (pend[li] or 0) + take(chk, r) > (s.cap or chk[r + 2]) then
      local why = s.why or chk[r + 3]
      if why == 'shed' then return why end
      reason = reason or why
    end
  end
  return reason
end

local pools = {}   -- limit index of a concurrency pool -> { expiresAt -> leases added by this call }

-- Earliest moment the whole group could pass every rate and budget limit (concurrency: best estimate).
-- For each limit the group needs used ≤ min over its jobs of (cap - units taken up to that job).
-- A full concurrency pool's wait (its earliest lease expiry) is only a guess — a slot may free at
-- any moment — so it counts only when no rate, budget, window or guard is over: a rate's exact wait
-- is never stretched to a lease's expiry (the waiting room takes a rate refusal's wait as exact).
-- jobs: { { p = profile, ik = idempotency key index } … }
local function retry_after(jobs)
  local need, seen, wait, guess = {}, {}, 0, 0
  for _, job in ipairs(jobs) do
    local ji = job.ik
    local dup = false
    if ji ~= 0 then
      if seen[ji] or idem_get(ji) then dup = true else seen[ji] = true end
    end
    if not dup then
      local chk = job.p.chk
      for r = 1, #chk, 4 do
        local li = chk[r]
        local s = S[li] or load(li)
        local n = need[li]
        if not n then
          n = { 0, s.cap or chk[r + 2] }
          need[li] = n
        end
        n[1] = n[1] + take(chk, r)
        local slack = (s.cap or chk[r + 2]) - n[1]
        if slack < n[2] then n[2] = slack end
      end
    end
  end
  for li, n in pairs(need) do
    local d = L[li]
    local s = S[li] or load(li)
    local w = 0
    if s.v > n[2] then
      if s.wait then
        w = s.wait
      elseif d[1] == LIMIT_KIND_RATE then
        if n[2] < 0 then w = math.ceil(s.v / d[7]) else w = math.ceil((s.v - n[2]) / d[7]) end
      elseif d[1] == LIMIT_KIND_BUDGET then
        -- the next window, or a later one while a debt is paid back (includes/budget.lua)
        local periods = 1
        if n[2] >= 0 and d[4] > 0 then periods = math.max(1, math.ceil((s.v - n[2]) / d[4])) end
        w = s.ws + periods * d[7] - now
      elseif d[1] == LIMIT_KIND_WINDOW then
        w = d[8]   -- more than the window holds: a whole period (the caller's batch is too big)
        if n[2] >= 0 then
          -- the window opens when enough of its entries have expired: walk them in expiry order
          local gone, offset = 0, 0
          while w == d[8] do
            local e = rcall('ZRANGEBYSCORE', KEYS[d[7]], '(' .. fmt(now), '+inf', 'LIMIT', offset, 100)
            if #e == 0 then break end
            local counts = rcall('HMGET', KEYS[d[2]], unpack(e))
            for i = 1, #e do
              gone = gone + (tonumber(counts[i]) or 0)
              if s.v - gone <= n[2] then
                w = tonumber(e[i]) - now
                break
              end
            end
            offset = offset + 100
          end
        end
      else
        local first = rcall('ZRANGEBYSCORE', KEYS[d[7]], '(' .. fmt(now), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
        local e = first[2] and tonumber(first[2])
        -- this call's own leases count too (they are written at the end)
        local own = pools[li]
        if own then
          for exp in pairs(own) do
            if not e or exp < e then e = exp end
          end
        end
        local g = 1000
        if e then g = e - now end
        if g > guess then guess = g end
      end
    end
    if w > wait then wait = w end
  end
  if wait < 1 then wait = guess end
  if wait < 1 then wait = 1 end
  return wait
end

local nowS = fmt(now)
local expiry = {}  -- expiresAt -> true: one expiry-index entry '<call id>@<expiresAt>' per distinct expiry
local records = {} -- field, record, … for this call's lease hash
local longest = 0  -- longest timeout among the leases written

-- The lease record of admitted job number `ord` (idems: the idempotency keys its admission created)
-- and its pool and expiry-index entries, all written in bulk at the end.
local function write_lease(p, ord, jobId, att, ctx, idems)
  local pre = p.pre
  if not pre then   -- once per profile and call: everything but the job's own fields is shared
    local bw = ''
    if p.bl then
      -- the window is written even for a zero reservation: settle adjusts only a window that exists
      S[p.bl].dirty = true
      bw = fmt(S[p.bl].ws)
    end
    p.exp = now + p.t
    pre = 'pending|' .. fmt(p.exp) .. '||||' .. nowS .. '|'
    p.pre = pre
    p.post = '|' .. p.pri .. '|' .. fmt(p.res) .. '|' .. bw .. '|' .. p.seg
    if p.t > longest then longest = p.t end
    expiry[p.exp] = true
  end
  local exp, n = p.exp, #records
  records[n + 1] = ord
  records[n + 2] = pre .. att .. p.post .. #idems .. ':' .. idems .. #jobId .. ':' .. jobId .. ctx
  if p.cl then
    -- the credit reservation: '@<lease id>' = the estimate (written with r at the end), and its ledger entry
    local s, leaseId = S[p.cl], callId .. '_' .. ord
    local f = s.f
    f[#f + 1] = '@' .. leaseId
    f[#f + 1] = fmt(p.cres)
    s.dirty = true
    if not p.ten then
      local c = string.find(p.seg, ':', 1, true)
      p.ten = string.sub(p.seg, c + 1, c + tonumber(string.sub(p.seg, 1, c - 1)))
    end
    credits_out(KEYS[L[p.cl][7]], credits_entry_id(jobId, att, 'reserve', leaseId), p.ten, 'reserve', p.cres, jobId, att, leaseId, now)
  end
  local conc = p.conc
  for c = 1, #conc do
    local li = conc[c]
    local z = pools[li]
    if not z then z = {}; pools[li] = z end
    z[exp] = (z[exp] or 0) + 1
  end
end

-- A record may leave its admission time to the script: `"admittedAt":"@"` becomes
-- `"admittedAt":"@<now ms>"` (src/idempotency-record.ts in @janus/execution reads it back), so that a
-- replay answers the time this step admitted the job, by Redis's clock, as the first answer did.
local function stamp(rec)
  return (string.gsub(rec, '"admittedAt":"@"', '"admittedAt":"@' .. nowS .. '"', 1))
end

local NOPEND = {}
local out = { now }
local ord = 0

local a = 9
local g = 0
while g < nG do
  g = g + 1
  local n, ri = tonumber(A[a]), tonumber(A[a + 1])
  a = a + 2
  local grec, gwin
  if ri > 0 then
    grec, gwin = stamp(A[a]), tonumber(A[a + 1])
    a = a + 2
  end
  if n == 1 and ri == 0 and A[a + 3] == '0' then
    -- The common case: single-job requests without idempotency (coalesced, one group each). The
    -- following groups of the same shape and profile form a run, decided together: identical jobs
    -- against the same state pass in arrival order up to the first that does not fit, and every
    -- one after it is refused the same way (a refusal takes nothing). So the first m are admitted
    -- at once and the rest share one reason and wait — the answers of deciding them one by one.
    -- Layout: this job's fields at a … a+4; each next group is 7 values: 1, 0, job, attempt,
    -- profile, 0, context (its job's fields 7 further on).
    local pi = A[a + 2]
    local p = P[tonumber(pi)]
    local k, b = 1, a + 5
    while g + k <= nG and A[b] == '1' and A[b + 1] == '0' and A[b + 4] == pi and A[b + 5] == '0' do
      k = k + 1
      b = b + 7
    end
    -- m: how many fit. Job j passes a check r iff used + (j-1) x (its limit's take per job) + take_r
    -- <= cap (a limit may be listed twice in a profile: per[li] sums its takes).
    local chk, inc = p.chk, p.inc
    local per = {}
    for r = 1, #chk, 4 do
      local li = chk[r]
      if not S[li] then load(li) end
      per[li] = (per[li] or 0) + take(chk, r)
    end
    local m = k
    for r = 1, #chk, 4 do
      local li = chk[r]
      local s = S[li]
      local room = (s.cap or chk[r + 2]) - s.v - take(chk, r)
      local fit
      if room < 0 then fit = 0 elseif per[li] > 0 then fit = math.floor(room / per[li]) + 1 else fit = k end
      if fit < m then m = fit end
    end
    if m > 0 then
      for li, t in pairs(per) do
        local s = S[li]
        s.v = s.v + t * m
      end
      for r = 1, #inc, 2 do
        local s = S[inc[r]]
        s.v = s.v + inc[r + 1] * m
      end
      for j = 0, m - 1 do
        local at = a + 7 * j
        ord = ord + 1
        write_lease(p, ordinal(ord), A[at], A[at + 1], A[at + 4], '')
        out[#out + 1] = ADMIT_REPLY_ADMITTED
      end
    end
    if m < k then
      local reason = check(p, NOPEND)
      local wait = retry_after({ { p = p, ik = 0 } })
      for _ = m + 1, k do
        ord = ord + 1
        out[#out + 1] = ADMIT_REPLY_REJECTED
        out[#out + 1] = 0
        out[#out + 1] = reason
        out[#out + 1] = wait
      end
    end
    g = g + k - 1
    a = a + 7 * k - 2
  else
    local jobs = {}
    for j = 1, n do
      ord = ord + 1
      local job = { job = A[a], att = A[a + 1], p = P[tonumber(A[a + 2])], ik = tonumber(A[a + 3]), ord = ordinal(ord) }
      if job.ik > 0 then
        job.rec = stamp(A[a + 4])
        a = a + 5
      else
        a = a + 4
      end
      job.ctx = A[a]
      a = a + 1
      jobs[j] = job
    end

    if ri ~= 0 and idem_get(ri) then
      if IDEMP[ri] then
        out[#out + 1] = ADMIT_REPLY_IN_PROGRESS
        out[#out + 1] = -1
        out[#out + 1] = idem_get(ri)
      else
        out[#out + 1] = ADMIT_REPLY_DUPLICATE
        out[#out + 1] = idem_get(ri)
      end
    else
      local pend, gidem, dups, fail, busy = {}, {}, {}, nil, nil
      for ji, job in ipairs(jobs) do
        local ik = job.ik
        local dup = nil
        if ik ~= 0 then
          local first = gidem[ik]
          if first then dup = first.rec else dup = idem_get(ik) or nil end
        end
        if dup and not gidem[ik] and IDEMP[ik] then
          job.dup_rec = dup
          busy = ji
          break
        elseif dup then
          job.dup = dup
          dups[#dups + 1] = ji - 1
          dups[#dups + 1] = dup
        else
          local reason = check(job.p, pend)
          if reason then
            fail = { ji, reason }
            break
          end
          local chk, inc = job.p.chk, job.p.inc
          for r = 1, #chk, 4 do pend[chk[r]] = (pend[chk[r]] or 0) + take(chk, r) end
          for r = 1, #inc, 2 do pend[inc[r]] = (pend[inc[r]] or 0) + inc[r + 1] end
          if ik ~= 0 then gidem[ik] = job end
        end
      end

      if busy then
        out[#out + 1] = ADMIT_REPLY_IN_PROGRESS
        out[#out + 1] = busy - 1
        out[#out + 1] = jobs[busy].dup_rec
      elseif fail then
        out[#out + 1] = ADMIT_REPLY_REJECTED
        out[#out + 1] = fail[1] - 1
        out[#out + 1] = fail[2]
        out[#out + 1] = retry_after(jobs)
      else
        for li, amount in pairs(pend) do
          local s = S[li]
          s.v = s.v + amount
        end
        local created = ''
        -- When every job replays an earlier admission the request's record is not written: no lease
        -- of this group would ever confirm it, and the caller's record (made for new jobs) would name
        -- jobs that do not exist; a replay of the request replays each job again.
        if ri ~= 0 and #dups / 2 < #jobs then
          IDEM[ri] = grec
          IDEMP[ri] = true
          rcall('HSET', KEYS[ri], 'r', grec, 'x', fmt(now + gwin), 'p', '1')
          rcall('PEXPIRE', KEYS[ri], gwin)
          created = KEYS[ri]
        end
        for ki, job in pairs(gidem) do
          local w = job.p.w
          IDEM[ki] = job.rec
          IDEMP[ki] = true
          rcall('HSET', KEYS[ki], 'r', job.rec, 'x', fmt(now + w), 'p', '1')
          rcall('PEXPIRE', KEYS[ki], w)
        end
        for _, job in ipairs(jobs) do
          if not job.dup then
            local idems = created
            if job.ik ~= 0 then
              idems = KEYS[job.ik]
              if created ~= '' then idems = idems .. ' ' .. created end
            end
            created = ''
            write_lease(job.p, job.ord, job.job, job.att, job.ctx, idems)
          end
        end
        if #dups > 0 then
          out[#out + 1] = ADMIT_REPLY_ADMITTED_WITH_REPLAYS
          out[#out + 1] = #dups / 2
          for i = 1, #dups do out[#out + 1] = dups[i] end
        else
          out[#out + 1] = ADMIT_REPLY_ADMITTED
        end
      end
    end
  end
end

for li, s in pairs(S) do
  if s.v ~= s.v0 or s.dirty then
    local d = L[li]
    local key = KEYS[d[2]]
    if d[1] == LIMIT_KIND_RATE then
      bucket_write(key, d[4] - s.v, now, d[8], d[7], d[4])
      -- A missing bucket reads as full, which is the truth once it has refilled; keep it twice as long.
      rcall('PEXPIRE', key, math.ceil(s.v / d[7]) * 2 + 60000)
    elseif d[1] == LIMIT_KIND_BUDGET then
      rcall('HSET', key, 'w', fmt(s.ws), 'u', fmt(s.v), 'p', fmt(d[7]), 'l', fmt(d[4]))
      rcall('PEXPIRE', key, budget_ttl(s.ws, d[7], s.v, d[4], now))
    elseif d[1] == LIMIT_KIND_WINDOW then
      pool_add(key, KEYS[d[7]], now + d[8], s.v - s.v0)
    elseif d[1] == LIMIT_KIND_GUARD then
      if s.probe then rcall('HSET', key, 'np', fmt(now + ADAPTIVE_PROBE_GAP_MS)) end
    elseif d[1] == LIMIT_KIND_CREDITS then
      if s.acct then rcall('HSET', key, 'r', fmt(s.v), unpack(s.f)) end
    elseif d[1] == LIMIT_KIND_FIRSTS or d[1] == LIMIT_KIND_RETRIES then
      ring_add(key, now, 'f', 'r', d[1] == LIMIT_KIND_FIRSTS and 'f' or 'r', s.v - s.v0)
      rcall('PEXPIRE', key, (ADAPTIVE_RETRY_WINDOW_S + 10) * 1000)
    end
  end
end
if #records > 0 then
  rcall('HSET', KEYS[4], unpack(records))
  rcall('PEXPIRE', KEYS[4], longest + retention)
end
for li, z in pairs(pools) do
  local d = L[li]
  if not S[li] then load(li) end   -- a tracked-only pool is never checked: drop its expired counts here
  for exp, k in pairs(z) do pool_add(KEYS[d[2]], KEYS[d[7]], exp, k) end
end
for exp in pairs(expiry) do
  local e = fmt(exp)
  rcall('ZADD', KEYS[3], e, callId .. '@' .. e)
end

return out
