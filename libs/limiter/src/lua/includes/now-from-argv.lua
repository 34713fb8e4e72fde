--[[
  now-from-argv — `now` in ms: ARGV[1] when a test pinned the clock, else Redis TIME, so that every
  instance reads one clock. Inlined where a script says `-- @include now-from-argv`; expects `rcall`.
]]
local now = tonumber(ARGV[1])
if now == 0 then
  local t = rcall('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
