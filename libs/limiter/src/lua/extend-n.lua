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

  Returns   JSON {s = LEASE_ANSWER_OK (1), j, a, t, y, r = reserved, e = new expiresAt}
            or {s = LEASE_ANSWER_UNKNOWN (-1) | _EXPIRED (-2) | _ALREADY_SETTLED (-3, also when revoked)}
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
local score = fmt(newExp)
local leaseId = ARGV[2]
if newExp ~= exp then
  for i = 3, 2 + tonumber(ARGV[6]), 2 do pool_move(KEYS[i], KEYS[i + 1], exp, newExp) end
  -- the lease now leaves its call's expiry-index entry behind: it gets its own (reap-n.lua). A claim
  -- that keeps the expiry (the usual one, ms = 1) stays with the entry that already covers it.
  rcall('ZADD', KEYS[2], score, leaseId)
end
local st = v.st
if not wait then
  if st == 'pending' then lease_confirm_idem(v) end
  st = 'running'
end
lease_write(KEYS[1], field, v, st, score, v.out, v.act, v.fin, newExp - now + tonumber(ARGV[5]))
return cjson.encode({ s = LEASE_ANSWER_OK, j = v.job, a = v.att, t = v.ten, y = v.typ, r = v.res, e = newExp })
