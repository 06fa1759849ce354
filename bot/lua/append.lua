-- KEYS: ledger, head, out key (or the ledger key again when there is no sent message), funnel,
-- the person's subject key.
-- ARGV: now, phone, flow id, flow hash, event, text, provider sid, out ttl, salt, funnel counter.
-- KEYS[6] and ARGV[11], for a message sent: the flow's cost counts and the field it adds one to (costs.lua).
-- A sent message is recorded once: a worker retrying after an answer lost with the connection logs nothing twice.
if KEYS[3] ~= KEYS[1] and redis.call('HEXISTS', KEYS[3], 'phone') == 1 then return 0 end
begin(KEYS[5], ARGV[9])
append(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], '', ARGV[6], ARGV[7], '')
save_heads()
redis.call('HINCRBY', KEYS[4], ARGV[10], 1)
if KEYS[6] then count_cost(KEYS[6], ARGV[11], KEYS[1]) end
if KEYS[3] ~= KEYS[1] then
  redis.call('HSET', KEYS[3], 'flow', ARGV[3], 'phone', ARGV[2])
  -- A status callback may already have come: never overwrite it with 'queued'.
  redis.call('HSETNX', KEYS[3], 'status', 'queued')
  redis.call('HSETNX', KEYS[3], 'rank', 3)
  redis.call('EXPIRE', KEYS[3], ARGV[8])
end
return 1
