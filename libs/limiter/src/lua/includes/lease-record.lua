--[[
  lease-record — shared by the scripts that read or rewrite a lease (settle, extend, revoke, reap);
  inlined by scripts/generate-lua.mjs where a script says `-- @include lease-record`.
  Expects `rcall` (redis.call) in scope.
]]
-- @include codes
-- A lease record is one field of its admission call's lease hash (layout in src/lease-record.ts):
-- 'st|exp|out|act|fin|adm|att|pri|res|bw|' then <bytes>:<text> for ten, typ, bk, conc, rate, idem, job, then ctx.
local function lease_read(v)
  local st, exp, out, act, fin, fixed, adm, att, res, bw, pos = string.match(v,
    '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|()([^|]*)|([^|]*)|[^|]*|([^|]*)|([^|]*)|()')
  if not st then return nil end
  local seg = {}
  for i = 1, 7 do
    local c = string.find(v, ':', pos, true)
    local n = tonumber(string.sub(v, pos, c - 1))
    seg[i] = string.sub(v, c + 1, c + n)
    pos = c + 1 + n
  end
  return { st = st, exps = exp, exp = tonumber(exp), out = out, act = act, fin = fin, fixed = string.sub(v, fixed),
    adm = tonumber(adm) or 0, att = tonumber(att), res = tonumber(res) or 0, bw = bw,
    ten = seg[1], typ = seg[2], bk = seg[3], conc = seg[4], rate = seg[5], idem = seg[6], job = seg[7], ctx = string.sub(v, pos) }
end

-- A lease is 'pending' from admission until its job message is confirmed in JetStream, then
-- 'active' (its `fin` field holds the message's stream sequence until it finishes), and 'running'
-- once a worker claimed or extended it. All three hold their limits; only a confirmed lease becomes
-- a timed_out attempt (reap-n.lua).
local function lease_held(v)
  return v.st == 'active' or v.st == 'pending' or v.st == 'running'
end

-- A pending lease's idempotency records say 'in progress' (field p) until it is confirmed: a worker
-- settling or extending it proves that its job message reached the stream. Its idempotency keys
-- are among the caller's KEYS.
local function lease_confirm_idem(v)
  for key in string.gmatch(v.idem, '%S+') do rcall('HDEL', key, 'p') end
end

-- The record of a lease that is held (active or pending) and unexpired at `now`, or nil and why not:
-- LEASE_ANSWER_UNKNOWN, _EXPIRED or _ALREADY_SETTLED (also for a revoked lease).
local function lease_live(key, field, now)
  local raw = rcall('HGET', key, field)
  local v = raw and lease_read(raw)
  if not v then return nil, LEASE_ANSWER_UNKNOWN end
  if v.st == 'expired' then return nil, LEASE_ANSWER_EXPIRED end
  if not lease_held(v) then return nil, LEASE_ANSWER_ALREADY_SETTLED end
  if v.exp <= now then return nil, LEASE_ANSWER_EXPIRED end
  return v
end

-- Rewrites the mutable head (st, exp, out, act, fin); the rest is kept as is. The lease hash (one per
-- admission call) then lives at least `ttl` ms more.
local function lease_write(key, field, r, st, exp, out, act, fin, ttl)
  rcall('HSET', key, field, st .. '|' .. exp .. '|' .. out .. '|' .. act .. '|' .. fin .. '|' .. r.fixed)
  rcall('PEXPIRE', key, ttl, 'GT')
end
