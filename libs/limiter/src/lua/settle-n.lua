--[[
  settle-n — finish an active lease exactly once: free every concurrency slot it holds and settle
  its budget reservation (actual minus estimate, in the window where it was reserved, if that
  window is still current). An unknown, expired or already finished lease changes nothing.

  KEYS[1]   the lease's hash (one per admission call; see admit-n.lua and src/lease-record.ts)
  KEYS[2]   lease expiry index (ZSET)
  KEYS[3]   tenant budget hash (the lease's `bk`), or the lease key again when it has none
  KEYS[4…]  the concurrency pools the lease holds (its `conc` field: HASH, ZSET per pool; includes/pool.lua)

  ARGV[1]   now in ms, or 0 to use Redis TIME
  ARGV[2]   lease id
  ARGV[3]   the lease's field in KEYS[1]
  ARGV[4]   outcome (succeeded | failed | timed_out)
  ARGV[5]   actual cost, or -1 when unknown (then the estimate stands)
  ARGV[6]   retention of the finished lease record in ms

  Returns   JSON {s = LEASE_ANSWER_OK (1), j, a, t, y, r = reserved, c = actual, at = now}
            or {s = LEASE_ANSWER_UNKNOWN (-1) | _EXPIRED (-2) | _ALREADY_SETTLED (-3, also when revoked)}
]]
local rcall = redis.call
-- @include now-from-argv
-- @include lease-record
-- @include pool
-- @include budget
local field = ARGV[3]
local v, failure = lease_live(KEYS[1], field, now)
if not v then return cjson.encode({ s = failure }) end

local leaseId = ARGV[2]
for i = 4, #KEYS, 2 do pool_remove(KEYS[i], KEYS[i + 1], v.exp) end
rcall('ZREM', KEYS[2], leaseId)

local reserved = v.res
local actual = tonumber(ARGV[5])
if actual < 0 then actual = reserved end
if v.bk ~= '' and actual ~= reserved then budget_adjust(KEYS[3], v.bw, actual - reserved) end

lease_write(KEYS[1], field, v, 'settled', v.exps, ARGV[4], fmt(actual), fmt(now), tonumber(ARGV[6]))
return cjson.encode({ s = LEASE_ANSWER_OK, j = v.job, a = v.att, t = v.ten, y = v.typ, r = reserved, c = actual, at = now })
