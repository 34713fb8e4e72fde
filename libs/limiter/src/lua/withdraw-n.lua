--[[
  withdraw-n — the admitting instance answered 503 for admissions whose job messages may be in
  JetStream all the same (the publish was never answered): each still-pending lease becomes
  'withdrawn'. A withdrawn lease keeps every limit it holds until it expires (its message may yet
  reach a worker), but can no longer be confirmed, extended or settled: a worker that checks its
  lease before running (the worker SDK does) skips the job, and its report changes nothing. At
  expiry the reaper releases it as no attempt (reap-n.lua), freeing its idempotency keys.

  KEYS[1…]  per lease: the lease's hash (one per admission call)
  ARGV[1…]  per lease: its field in the lease hash

  Returns   number of leases withdrawn
]]
local rcall = redis.call
local n = 0
for i = 1, #KEYS do
  local raw = rcall('HGET', KEYS[i], ARGV[i])
  if raw and string.sub(raw, 1, 8) == 'pending|' then
    rcall('HSET', KEYS[i], ARGV[i], 'withdrawn' .. string.sub(raw, 8))
    n = n + 1
  end
end
return n
