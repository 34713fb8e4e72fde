--[[
  time-1 — Redis TIME in ms, read on the node that holds the namespace's state. On one server that
  is TIME itself; on a Redis Cluster a keyless TIME goes to any node, whose clock may differ from
  the one every admission script reads: the key routes this call to the namespace's own node.

  KEYS[1]   any key of the namespace's slot (only routes the call; not read)
  Returns   now in ms
]]
local t = redis.call('TIME')
return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
