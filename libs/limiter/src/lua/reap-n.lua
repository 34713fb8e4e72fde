--[[
  reap-n — atomically free leases that are still active and expired at `now`: remove them from
  every concurrency pool and the expiry index and mark them expired. Their budget reservation
  stays spent (the actual cost is unknown). Leases settled or extended meanwhile are left alone.

  KEYS[1]   lease expiry index (ZSET)
  KEYS[2…]  per lease, in ARGV order: the lease record (string), then the concurrency pools it holds

  ARGV[1]   now in ms (from expired-1)
  ARGV[2]   retention of the finished lease record in ms
  ARGV[3…]  per lease: lease id, number of concurrency pools

  Returns   JSON [ {i = leaseId, j, a, t, y, r = reserved, e = expiresAt} … ] for the leases it expired
]]
local rcall = redis.call
local now = tonumber(ARGV[1])
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
local out = {}
local k = 2
for a = 3, #ARGV, 2 do
  local leaseId = ARGV[a]
  local n = tonumber(ARGV[a + 1])
  local lease = KEYS[k]
  local raw = rcall('GET', lease)
  local v = raw and lease_read(raw)
  if not v then
    rcall('ZREM', KEYS[1], leaseId)
  elseif v.st ~= 'active' then
    rcall('ZREM', KEYS[1], leaseId)
  elseif v.exp <= now then
    for i = k + 1, k + n do rcall('ZREM', KEYS[i], leaseId) end
    rcall('ZREM', KEYS[1], leaseId)
    lease_write(lease, v, 'expired', v.exps, v.out, v.act, string.format('%.0f', now), tonumber(ARGV[2]))
    out[#out + 1] = { i = leaseId, j = v.job, a = v.att, t = v.ten, y = v.typ, r = v.res, e = v.exp }
  end
  k = k + n + 1
end
if #out == 0 then return '[]' end
return cjson.encode(out)
