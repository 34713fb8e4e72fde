--[[
  takeover-n — fresh admissions of attempts whose job messages JetStream already holds take over
  the leases those messages name.

  How it comes about: an earlier admission of the same attempt published its job message, and its
  lease lapsed before anything confirmed it (the admitting instance died after the publish and no
  worker could claim in time), so the reaper released it as no attempt (reap-n.lua: 'revoked') and
  freed its idempotency keys. Admitted again, the attempt's message is a duplicate under its msgID
  `<jobId>.<attempt>` (CONTRACT §4) for JetStream's duplicate window: the message that will reach a
  worker is the stored one, with the earlier lease's token. So the fresh admission's record (what it
  holds: slots, tokens, idempotency records, its expiry) moves to the earlier lease's place, and the
  fresh lease is marked revoked without releasing anything. Pools count leases by expiry, not by id
  (includes/pool.lua), so nothing else moves; the taken-over lease gets its own expiry-index entry
  (as an extended lease has). The caller then confirms the taken-over lease with the stored
  message's sequence.

  All or nothing: a pair is taken over only if the fresh lease is pending and unexpired, holds no
  budget or credit reservation (the ledgers, keyed by attempt, would keep one reservation where
  Redis holds two), and the earlier lease was revoked and belongs to the same job and attempt;
  otherwise nothing changes.

  KEYS[1]   epoch: exists while the stored state is trustworthy (includes/epoch.lua)
  KEYS[2]   lease expiry index (ZSET)
  KEYS[3…]  per pair: the fresh lease's hash, the earlier lease's hash, the job's tenant's credits hash

  ARGV[1]   now in ms, or 0 to use Redis TIME
  ARGV[2]   retention of the finished lease record in ms
  ARGV[3…]  per pair: the fresh lease's field, its id, the earlier lease's field, its id

  Returns   1 when every pair was taken over, 0 when none was (nothing changed), or
            ADMIT_FAULT_STATE_LOST when the state was lost
]]
local rcall = redis.call
-- @include now-from-argv
-- @include fmt
-- @include lease-record
if rcall('EXISTS', KEYS[1]) == 0 then return ADMIT_FAULT_STATE_LOST end
local retention = tonumber(ARGV[2])

local pairs_ = {}
local k = 3
for a = 3, #ARGV, 4 do
  local fresh, earlier, credits = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  k = k + 3
  local ffield, fid, efield, eid = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local fraw, eraw = rcall('HGET', fresh, ffield), rcall('HGET', earlier, efield)
  local f, e = fraw and lease_read(fraw), eraw and lease_read(eraw)
  if not (f and e) then return 0 end
  if f.st ~= 'pending' or f.res ~= 0 or f.exp <= now then return 0 end
  if rcall('HEXISTS', credits, '@' .. fid) == 1 then return 0 end
  if e.st ~= 'revoked' or e.job ~= f.job or e.att ~= f.att then return 0 end
  pairs_[#pairs_ + 1] = { fresh = fresh, ffield = ffield, f = f, fraw = fraw, earlier = earlier, efield = efield, id = eid }
end

for _, p in ipairs(pairs_) do
  rcall('HSET', p.earlier, p.efield, p.fraw)
  rcall('PEXPIRE', p.earlier, p.f.exp - now + retention, 'GT')
  rcall('ZADD', KEYS[2], p.f.exps, p.id)
  lease_write(p.fresh, p.ffield, p.f, 'revoked', p.f.exps, p.f.out, p.f.act, fmt(now), retention)
end
return 1
