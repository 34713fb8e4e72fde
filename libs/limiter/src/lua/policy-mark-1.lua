--[[
  policy-mark-1 — records which policy the state in this Redis was last carried over to (src/limiter.ts
  `setPolicy`): the version and its document. A limiter that starts compares its policy with it, so
  that a change made while no limiter ran (every app down, policy-admin up) is carried over as one
  made while they ran (running jobs counted in the limits it added, rates that changed kind). Only
  ever moves forward: instances applying versions 5 and 6 at once leave 6.

  KEYS[1]   the marker HASH: v = version, doc = the policy document (JSON)

  ARGV[1]   the version carried over to
  ARGV[2]   its document (JSON)

  Returns   the version the marker holds afterwards
]]
local v = tonumber(redis.call('HGET', KEYS[1], 'v'))
local version = tonumber(ARGV[1])
if v ~= nil and v >= version then return v end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'doc', ARGV[2])
return version
