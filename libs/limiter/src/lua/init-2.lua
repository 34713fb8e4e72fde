--[[
  init-2 — mark the limiter state as trustworthy, or start recovery after it was lost.

  KEYS[1]   epoch
  KEYS[2]   recovering-until
  ARGV[1]   mode: 'fresh' (the operator knows no lease is live: write the epoch if missing)
                  | 'recover' (if the epoch is missing, close admission for ARGV[3] ms)
  ARGV[2]   now in ms, or 0 to use Redis TIME
  ARGV[3]   recovery window in ms

  Returns   { 1, epoch } when the state is trustworthy, or { 0, recoveringUntil }
]]
local rcall = redis.call
local now = tonumber(ARGV[2])
if now == 0 then
  local t = rcall('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local epoch = rcall('GET', KEYS[1])
if epoch then return { 1, epoch } end
if ARGV[1] == 'fresh' then
  rcall('SET', KEYS[1], string.format('%.0f', now))
  rcall('DEL', KEYS[2])
  return { 1, string.format('%.0f', now) }
end
local reopenAt = tonumber(rcall('GET', KEYS[2]))
if not reopenAt then
  reopenAt = now + tonumber(ARGV[3])
  rcall('SET', KEYS[2], string.format('%.0f', reopenAt))
elseif now >= reopenAt then
  rcall('SET', KEYS[1], string.format('%.0f', now))
  rcall('DEL', KEYS[2])
  return { 1, string.format('%.0f', now) }
end
return { 0, string.format('%.0f', reopenAt) }
