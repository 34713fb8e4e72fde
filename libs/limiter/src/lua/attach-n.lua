--[[
  attach-n — counts running jobs in the concurrency pools of a dependency their job type was given
  after they were admitted (CONTRACT §6.1: "a limit added while jobs run counts those jobs"). A
  policy change that adds a dependency to a job type makes every limiter that applies it call this
  for the live leases of that job type (src/attach.ts): each lease still held and unexpired gets the
  pools it lacks — counted at its expiry, so that extend, settle, revoke and the reaper move and free
  them as any lease's — and its record's `conc` field names them. A pool the record already names is
  left alone, so attaching twice, or from every instance at once, counts nothing twice. A lease
  settled, revoked or expired meanwhile is skipped. Nothing is written while the state is lost (the
  epoch is missing): a rebuild counts every live lease under the policy of its time.

  KEYS[1]   epoch
  KEYS[2…]  per lease: its call's lease hash, then nPools × (pool HASH, pool ZSET)

  ARGV[1]   now in ms, or 0 to use Redis TIME
  ARGV[2…]  per lease: its field in the hash, nPools

  Returns   { ATTACH_ANSWER_OK, leases given at least one pool, pools added }
            or { ATTACH_ANSWER_STATE_LOST } (nothing written)
]]
local rcall = redis.call
-- @include codes
-- @include now-from-argv
-- @include pool
-- @include lease-record
if rcall('EXISTS', KEYS[1]) == 0 then return { ATTACH_ANSWER_STATE_LOST } end

-- The record with its conc field (the 4th length-prefixed segment after the ten head fields)
-- replaced by `conc`.
local function with_conc(raw, conc)
  local pos = 1
  for _ = 1, 10 do pos = string.find(raw, '|', pos, true) + 1 end
  for _ = 1, 3 do
    local c = string.find(raw, ':', pos, true)
    pos = c + 1 + tonumber(string.sub(raw, pos, c - 1))
  end
  local c = string.find(raw, ':', pos, true)
  local after = c + 1 + tonumber(string.sub(raw, pos, c - 1))
  return string.sub(raw, 1, pos - 1) .. #conc .. ':' .. conc .. string.sub(raw, after)
end

local leases, pools = 0, 0
local k, a = 2, 2
while a <= #ARGV do
  local hash, field, nPools = KEYS[k], ARGV[a], tonumber(ARGV[a + 1])
  local raw = rcall('HGET', hash, field)
  local v = raw and lease_read(raw)
  if v and lease_held(v) and v.exp > now then
    local held = {}
    for key in string.gmatch(v.conc, '%S+') do held[key] = true end
    local conc, added = v.conc, 0
    for p = 1, nPools do
      local H, X = KEYS[k + 2 * p - 1], KEYS[k + 2 * p]
      if not held[H] then
        held[H] = true
        pool_add(H, X, v.exp, 1)
        conc = conc == '' and (H .. ' ' .. X) or (conc .. ' ' .. H .. ' ' .. X)
        added = added + 1
      end
    end
    if added > 0 then
      rcall('HSET', hash, field, with_conc(raw, conc))
      leases = leases + 1
      pools = pools + added
    end
  end
  k = k + 1 + 2 * nPools
  a = a + 2
end
return { ATTACH_ANSWER_OK, leases, pools }
