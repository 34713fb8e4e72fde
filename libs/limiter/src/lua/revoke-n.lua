--[[
  revoke-n — undo admissions whose publish failed: for each still-active lease give its rate
  tokens back (capped at the bucket size), free its concurrency slots, return its budget
  reservation (if its window is current), delete the idempotency records it created, and mark it
  revoked. Holdings are read from the lease record; they never change after admission, and the
  caller passes the same keys as KEYS so that they are declared.

  KEYS[1]   lease expiry index (ZSET)
  KEYS[2…]  per lease: the lease record (string), then every key named in its conc, rate, bk and idem fields

  ARGV[1]   now in ms, or 0 to use Redis TIME
  ARGV[2]   retention of the finished lease record in ms
  ARGV[3…]  per lease: lease id, number of KEYS that belong to it (record included)

  Returns   number of leases revoked
]]
local rcall = redis.call
local now = tonumber(ARGV[1])
if now == 0 then
  local t = rcall('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function fmt(n)
  return string.format('%.0f', n)
end
-- The lease record is one string (layout in src/lease-record.ts):
-- 'st|exp|out|act|fin|adm|att|pri|res|bw|' then <bytes>:<text> for ten, typ, bk, conc, rate, idem, job, then ctx.
local function lease_read(v)
  local st, exp, out, act, fin, fixed, att, res, bw, pos = string.match(v,
    '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|()[^|]*|([^|]*)|[^|]*|([^|]*)|([^|]*)|()')
  if not st then return nil end
  local seg = {}
  for i = 1, 7 do
    local c = string.find(v, ':', pos, true)
    local n = tonumber(string.sub(v, pos, c - 1))
    seg[i] = string.sub(v, c + 1, c + n)
    pos = c + 1 + n
  end
  return { st = st, exps = exp, exp = tonumber(exp), out = out, act = act, fin = fin, fixed = string.sub(v, fixed),
    att = tonumber(att), res = tonumber(res) or 0, bw = bw,
    ten = seg[1], typ = seg[2], bk = seg[3], conc = seg[4], rate = seg[5], idem = seg[6], job = seg[7] }
end

-- Rewrites the mutable head (st, exp, out, act, fin) and the time to live; the rest is kept as is.
local function lease_write(key, r, st, exp, out, act, fin, ttl)
  rcall('SET', key, st .. '|' .. exp .. '|' .. out .. '|' .. act .. '|' .. fin .. '|' .. r.fixed, 'PX', ttl)
end
local revoked = 0
local k = 2
for a = 3, #ARGV, 2 do
  local leaseId = ARGV[a]
  local lease = KEYS[k]
  k = k + tonumber(ARGV[a + 1])
  local raw = rcall('GET', lease)
  local v = raw and lease_read(raw)
  if v and v.st == 'active' then
    for key in string.gmatch(v.conc, '%S+') do rcall('ZREM', key, leaseId) end
    rcall('ZREM', KEYS[1], leaseId)
    for key, amount, cap, refill in string.gmatch(v.rate, '([^,%s]+) (%d+) (%d+) (%d+)') do
      amount, cap, refill = tonumber(amount), tonumber(cap), tonumber(refill)
      local b = rcall('HMGET', key, 't', 'ts')
      local tokens = tonumber(b[1])
      if tokens ~= nil then
        local ts = tonumber(b[2]) or now
        if now > ts then tokens = math.min(cap, tokens + (now - ts) * refill) end
        tokens = math.min(cap, tokens + amount)
        rcall('HSET', key, 't', fmt(tokens), 'ts', fmt(math.max(now, ts)))
      end
    end
    if v.bk ~= '' then
      local w = rcall('HGET', v.bk, 'w')
      if w == v.bw then
        local used = tonumber(rcall('HGET', v.bk, 'u')) or 0
        rcall('HSET', v.bk, 'u', fmt(math.max(0, used - v.res)))
      end
    end
    for key in string.gmatch(v.idem, '%S+') do rcall('DEL', key) end
    lease_write(lease, v, 'revoked', v.exps, v.out, v.act, fmt(now), tonumber(ARGV[2]))
    revoked = revoked + 1
  end
end
return revoked
