--[[
  credits-topup-4 — an admin tops up a tenant's prepaid credits (CONTRACT §5 v1.1
  `POST /v1/tenants/{id}/credits`), once per Idempotency-Key: the first call with a key adds
  `amount` to the balance (creating the account) and appends a 'topup' entry to the credits outbox;
  a repeated key changes nothing. The marker (KEYS[2]) is kept ARGV[5] ms; the ledger's unique entry
  id in PostgreSQL is the permanent record.

  KEYS[1]   the tenant's credits hash (includes/credits.lua)
  KEYS[2]   the top-up marker of (tenant, key digest)
  KEYS[3]   the credits outbox (STREAM)
  KEYS[4]   epoch: a top-up waits while the state is not trusted (a rebuild sets the balance from the ledger)

  ARGV[1]   now in ms, or 0 to use Redis TIME
  ARGV[2]   amount (int ≥ 1)
  ARGV[3]   the entry id ('topup.<tenant>.<digest>')
  ARGV[4]   tenant
  ARGV[5]   marker TTL in ms

  Returns   { applied (1 new, 0 a replay, -1 the state is not trusted: nothing done), balance, reserved,
            the top-up's amount and Redis ms (a replay: the first call's, from the marker, so that its
            ledger entry can be published again exactly) }
]]
local rcall = redis.call
-- @include fmt
-- @include now-from-argv
-- @include credits
if rcall('EXISTS', KEYS[4]) == 0 then return { -1, 0, 0, 0, now } end
local applied, amount, at = 0, nil, nil
local marker = rcall('GET', KEYS[2])
if marker then
  amount, at = string.match(marker, '^(%d+) (%d+)$')
  amount, at = tonumber(amount), tonumber(at)
else
  amount, at = tonumber(ARGV[2]), now
  rcall('HINCRBY', KEYS[1], 'b', amount)
  rcall('HSETNX', KEYS[1], 'r', 0)
  rcall('SET', KEYS[2], fmt(amount) .. ' ' .. fmt(now), 'PX', tonumber(ARGV[5]))
  credits_out(KEYS[3], ARGV[3], ARGV[4], 'topup', amount, '', 0, '', now)
  applied = 1
end
local v = rcall('HMGET', KEYS[1], 'b', 'r')
return { applied, tonumber(v[1]) or 0, tonumber(v[2]) or 0, amount or 0, at or now }
