--[[
  confirm-n — record that the job messages of pending leases are in JetStream (the publish was
  acknowledged): each pending lease becomes 'active', with the message's stream sequence in its
  `fin` field (from now on its expiry is a timed_out attempt unless no worker was ever delivered
  the message, see extend-n.lua 'wait'), and its idempotency records lose their 'in progress' mark, so a replay of
  the request is answered as a duplicate. A lease a worker already settled or extended only loses
  the mark (if any is left). A lease no longer held (revoked, or reaped while pending) is not
  confirmed: its job message is in the stream although its admission was undone, and the caller
  learns it from the answer.

  KEYS[1]   epoch: exists while the stored state is trustworthy (includes/epoch.lua)
  KEYS[2…]  per lease: the lease's hash (one per admission call), then its idempotency records
            (its `idem` field, as the admission wrote them)

  ARGV[1…]  per lease: its field in the lease hash, the number of KEYS that belong to it (hash
            included), and its job message's stream sequence

  Returns   per lease, in order: 1 confirmed (or active or settled already), 0 not held (revoked,
            expired or unknown); or { ADMIT_FAULT_STATE_LOST } when the state was lost (a lease
            missing then says nothing: the rebuild may restore it)
]]
local rcall = redis.call
-- @include lease-record
if rcall('EXISTS', KEYS[1]) == 0 then return { ADMIT_FAULT_STATE_LOST } end
local out = {}

-- The general case: any state, idempotency records named in the record.
local function confirm(lease, field, raw, seq)
  local v = raw and lease_read(raw)
  if not (v and (lease_held(v) or v.st == 'settled')) then return 0 end
  lease_confirm_idem(v)
  if v.st == 'pending' then
    rcall('HSET', lease, field, 'active|' .. v.exps .. '|' .. v.out .. '|' .. v.act .. '|' .. seq .. '|' .. v.fixed)
  end
  return 1
end

local k = 2
for a = 1, #ARGV, 3 do
  local lease, field, seq = KEYS[k], ARGV[a], ARGV[a + 2]
  k = k + tonumber(ARGV[a + 1])
  local raw = rcall('HGET', lease, field)
  -- The common case, a pending lease without idempotency records (the caller passed none): the
  -- record 'pending|<exp>||||<adm>|…' becomes 'active|<exp>|||<seq>|<adm>|…' without being parsed
  -- (out, act and fin are empty while a lease is pending).
  local bars = raw and ARGV[a + 1] == '1' and string.sub(raw, 1, 8) == 'pending|' and string.find(raw, '||||', 9, true)
  if bars then
    rcall('HSET', lease, field, 'active' .. string.sub(raw, 8, bars + 2) .. seq .. string.sub(raw, bars + 3))
    out[#out + 1] = 1
  else
    out[#out + 1] = confirm(lease, field, raw, seq)
  end
end
return out
