--[[
  revoke-n — undo admissions whose publish failed: for each still-held lease give its rate
  tokens back (capped at the bucket size; in the bucket's stored scale, includes/bucket.lua), free
  its concurrency slots (a rate window's entries stay: conservative), return its budget
  reservation (if its window is current), release its credit reservation (includes/credits.lua), delete the idempotency records it created, and mark it
  revoked. Holdings are read from the lease record; they never change after admission, and the
  caller passes the same keys as KEYS so that they are declared.

  KEYS[1]   lease expiry index (ZSET)
  KEYS[2]   the credits outbox (STREAM)
  KEYS[3…]  per lease: the lease's hash (one per admission call), then every key named in its conc, rate,
            bk and idem fields, then its tenant's credits hash (last)

  ARGV[1]   now in ms, or 0 to use Redis TIME
  ARGV[2]   retention of the finished lease record in ms
  ARGV[3…]  per lease: lease id, its field in the lease hash, number of KEYS that belong to it (hash included)

  Returns   number of leases revoked
]]
local rcall = redis.call
-- @include now-from-argv
-- @include lease-record
-- @include pool
-- @include bucket
-- @include budget
-- @include credits
local revoked = 0
local k = 3
for a = 3, #ARGV, 3 do
  local leaseId = ARGV[a]
  local field = ARGV[a + 1]
  local lease = KEYS[k]
  local own = tonumber(ARGV[a + 2])
  local credits = own > 1 and KEYS[k + own - 1]
  k = k + own
  local raw = rcall('HGET', lease, field)
  local v = raw and lease_read(raw)
  if v and lease_held(v) then
    if v.exp > now then
      for h, x in string.gmatch(v.conc, '(%S+) (%S+)') do pool_remove(h, x, v.exp) end
    end
    rcall('ZREM', KEYS[1], leaseId)
    -- entries 'key amount capacity refill' (a costRate bucket's adds 'estimate periodMs'; a job rate's
    -- amount, one job, is its periodMs). A costRate window's entry ('key window …') does not match:
    -- window entries are never given back (the job may have reached the dependency all the same).
    for entry in string.gmatch(v.rate, '[^,]+') do
      local key, amount, cap, refill, rest = string.match(entry, '^(%S+) (%d+) (%d+) (%d+)(.*)$')
      if key then
        amount = tonumber(amount)
        local period = tonumber(string.match(rest, '^ %d+ (%d+)$')) or amount
        local tokens, ts, p, r, c = bucket_state(key, now, tonumber(cap), tonumber(refill))
        if tokens ~= nil then
          -- stored at another period (the policy changed it since admission): in that scale, rounded down
          if p and p ~= period and period > 0 then amount = math.floor(amount * p / period) end
          bucket_write(key, math.min(c, tokens + amount), math.max(now, ts), p, r, c)
        end
      end
    end
    if v.bk ~= '' then budget_adjust(v.bk, v.bw, -v.res, now) end
    if credits then credits_finish(credits, KEYS[2], leaseId, v, nil, now) end
    for key in string.gmatch(v.idem, '%S+') do rcall('DEL', key) end
    lease_write(lease, field, v, 'revoked', v.exps, v.out, v.act, fmt(now), tonumber(ARGV[2]))
    revoked = revoked + 1
  end
end
return revoked
