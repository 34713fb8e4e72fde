--[[
  lease-put — writes a lease record that Redis does not hold, as admit-n would have written it
  (shared by state-restore-n and adopt-n; inlined by scripts/generate-lua.mjs). Expects `rcall`,
  `now` and pool_add (includes/pool.lua) in scope.

  lease_put(hash, field, leaseId, exp, record, expiryIndex, retention, poolKeys, firstPool, nPools)
  If the field exists it is left alone (nothing is counted twice) and false is returned. Otherwise
  the record is counted in every concurrency pool it holds (KEYS pairs poolKeys[firstPool…]: pool
  HASH, pool ZSET) while unexpired, and entered in the expiry index under its own lease id (as an
  extended lease is), so that settle, extend and the reaper treat it as any other lease; one
  already expired is entered too: the reaper turns it into a timed_out outcome. The hash lives at
  least until expiry + retention. Returns true.
]]
local function lease_put(hash, field, leaseId, exp, record, expiryIndex, retention, poolKeys, firstPool, nPools)
  if rcall('HSETNX', hash, field, record) == 0 then return false end
  local ttl = exp - now + retention
  local left = rcall('PTTL', hash)
  if left < ttl then rcall('PEXPIRE', hash, ttl) end
  if exp > now then
    for p = 1, nPools do pool_add(poolKeys[firstPool + 2 * p - 2], poolKeys[firstPool + 2 * p - 1], exp, 1) end
  end
  rcall('ZADD', expiryIndex, fmt(exp), leaseId)
  return true
end
