--[[
  state-lock-1 — the rebuild lock: at most one instance rebuilds a lost state at a time. The holder
  names itself with a random token; the lock expires on its own (ttl) if the holder dies, and
  another instance takes over. Every write of a rebuild (state-restore-n, state-open-3) checks the
  lock again, so a holder that lost it (paused past its ttl) writes nothing.

  KEYS[1]   the rebuild lock (STRING: the holder's token)
  ARGV[1]   'acquire' (take it if free) | 'renew' (extend it if ours) | 'release' (drop it if ours)
  ARGV[2]   the caller's token
  ARGV[3]   ttl in ms (acquire, renew)

  Returns   LOCK_ANSWER_HELD (1): acquired, renewed or released; LOCK_ANSWER_NOT_HELD (0): another holder has it
            (acquire), or it is not ours any more (renew, release)
]]
local rcall = redis.call
-- @include codes
local mode, token = ARGV[1], ARGV[2]
if mode == 'acquire' then
  if rcall('SET', KEYS[1], token, 'NX', 'PX', tonumber(ARGV[3])) then return LOCK_ANSWER_HELD end
  -- taking it again is idempotent for its holder
  if rcall('GET', KEYS[1]) == token then
    rcall('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
    return LOCK_ANSWER_HELD
  end
  return LOCK_ANSWER_NOT_HELD
end
if rcall('GET', KEYS[1]) ~= token then return LOCK_ANSWER_NOT_HELD end
if mode == 'renew' then
  rcall('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
else
  rcall('DEL', KEYS[1])
end
return LOCK_ANSWER_HELD
