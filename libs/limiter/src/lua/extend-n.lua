--[[
  extend-n — move an active, unexpired lease's expiry to max(current expiry, now + ms), in the
  lease record, the expiry index and every concurrency pool it holds.

  KEYS[1]   lease record (string, see src/lease-record.ts)
  KEYS[2]   lease expiry index (ZSET)
  KEYS[3…]  the concurrency pools the lease holds

  ARGV[1]   now in ms, or 0 to use Redis TIME
  ARGV[2]   lease id
  ARGV[3]   ms to extend by (from now)
  ARGV[4]   retention of the finished lease record in ms

  Returns   JSON {s = 1, j, a, t, y, r = reserved, e = new expiresAt}
            or {s = -1 (unknown) | -2 (expired) | -3 (already settled or revoked)}
]]
local rcall = redis.call
local now = tonumber(ARGV[1])
if now == 0 then
  local t = rcall('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
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
local raw = rcall('GET', KEYS[1])
local v = raw and lease_read(raw)
if not v then return cjson.encode({ s = -1 }) end
if v.st == 'expired' then return cjson.encode({ s = -2 }) end
if v.st ~= 'active' then return cjson.encode({ s = -3 }) end
local exp = v.exp
if exp <= now then return cjson.encode({ s = -2 }) end

local newExp = math.max(exp, now + tonumber(ARGV[3]))
local score = string.format('%.0f', newExp)
local leaseId = ARGV[2]
for i = 3, #KEYS do rcall('ZADD', KEYS[i], 'XX', score, leaseId) end
rcall('ZADD', KEYS[2], 'XX', score, leaseId)
lease_write(KEYS[1], v, v.st, score, v.out, v.act, v.fin, newExp - now + tonumber(ARGV[4]))
return cjson.encode({ s = 1, j = v.job, a = v.att, t = v.ten, y = v.typ, r = v.res, e = newExp })
