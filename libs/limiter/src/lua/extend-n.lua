--[[
  extend-n — move a held, unexpired lease's expiry to max(current expiry, now + ms), in the lease
  record, the expiry index and every concurrency pool it holds.

  Mode 'claim' (a worker, before it runs the job or while it works): the lease becomes 'running' —
  a worker holds its job message, so a pending lease is confirmed with it.
  Mode 'wait' (the scheduler, for a job whose message no worker was ever delivered, CONTRACT §4:
  the job waits again and keeps its attempts): only an 'active' lease (confirmed, never claimed) is
  extended, and it stays 'active'.

  KEYS[1]   the lease's hash (one per admission call; see admit-n.lua and src/lease-record.ts)
  KEYS[2]   lease expiry index (ZSET)
  KEYS[3…]  the concurrency pools the lease holds (its `conc` field: HASH, ZSET per pool; includes/pool.lua),
            ARGV[6] keys, then its idempotency records (its `idem` field)

  ARGV[1]   now in ms, or 0 to use Redis TIME
  ARGV[2]   lease id
  ARGV[3]   the lease's field in KEYS[1]
  ARGV[4]   ms to extend by (from now)
  ARGV[5]   retention of the finished lease record in ms
  ARGV[6]   number of concurrency pool KEYS (from KEYS[3])
  ARGV[7]   'claim' or 'wait'
  ARGV[8]   'fast' (optional): KEYS holds only KEYS[1] and KEYS[2], without reading the record first —
            a claim that keeps the expiry (ARGV[4] ≤ 1, the worker SDK's claim) needs no other key
            unless the lease is pending with idempotency records; then the answer is
            LEASE_ANSWER_NEED_KEYS and nothing changed (the caller reads the record and asks again)

  Returns   JSON {s = LEASE_ANSWER_OK (1), j, a, t, y, r = reserved, e = new expiresAt, m = admitted
            at, g = 1 if no worker had claimed or extended it before (the job starts)}
            or {s = LEASE_ANSWER_UNKNOWN (-1) | _EXPIRED (-2) | _ALREADY_SETTLED (-3, also when
            revoked) | _NEED_KEYS (-4, 'fast' only)}
]]
local rcall = redis.call
-- @include now-from-argv
-- @include lease-record
-- @include pool
local field = ARGV[3]
local v, failure = lease_live(KEYS[1], field, now)
if not v then return cjson.encode({ s = failure }) end
local wait = ARGV[7] == 'wait'
if wait and v.st ~= 'active' then return cjson.encode({ s = LEASE_ANSWER_ALREADY_SETTLED }) end
local exp = v.exp

local newExp = math.max(exp, now + tonumber(ARGV[4]))
if ARGV[8] == 'fast' and (newExp ~= exp or (v.st == 'pending' and v.idem ~= '')) then
  return cjson.encode({ s = LEASE_ANSWER_NEED_KEYS })
end
local score = fmt(newExp)
local leaseId = ARGV[2]
if newExp ~= exp then
  for i = 3, 2 + tonumber(ARGV[6]), 2 do pool_move(KEYS[i], KEYS[i + 1], exp, newExp) end
  -- the lease now leaves its call's expiry-index entry behind: it gets its own (reap-n.lua). A claim
  -- that keeps the expiry (the usual one, ms = 1) stays with the entry that already covers it.
  rcall('ZADD', KEYS[2], score, leaseId)
end
local st = v.st
local started = st ~= 'running' and 1 or 0
if not wait then
  if st == 'pending' then lease_confirm_idem(v) end
  st = 'running'
end
lease_write(KEYS[1], field, v, st, score, v.out, v.act, v.fin, newExp - now + tonumber(ARGV[5]))
return cjson.encode({ s = LEASE_ANSWER_OK, j = v.job, a = v.att, t = v.ten, y = v.typ, r = v.res, e = newExp,
  m = tonumber(string.match(v.fixed, '^[^|]*')), g = started })
