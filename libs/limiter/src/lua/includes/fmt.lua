--[[
  fmt — an integer as Redis should store it: '%.0f', never an exponent (ms timestamps and scaled
  token counts exceed 1e14). Inlined where a script or include says `-- @include fmt`.
]]
local function fmt(n)
  return string.format('%.0f', n)
end
