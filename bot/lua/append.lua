-- KEYS: ledger, head, out key (or the ledger key again when there is no sent message), funnel,
-- the person's subjects hash, the flow's cost counts, its in-flight hash.
-- ARGV: now, phone, flow id, flow hash, event, text, provider sid, out ttl, salt, funnel counters
-- (comma-separated), the cost counts' field a message sent adds one to (costs.lua; '' for none),
-- the in-flight entry the outcome settles ('' for none: bot/witness.py), the entry's state field, the
-- number's HMAC ('-' for none).
-- A sent message is recorded once: a worker retrying after an answer lost with the connection logs nothing twice.
if ARGV[12] ~= '' then redis.call('HDEL', KEYS[7], ARGV[12]) end
if KEYS[3] ~= KEYS[1] and redis.call('HEXISTS', KEYS[3], 'phone') == 1 then return 0 end
begin(KEYS[5], ARGV[14], ARGV[9])
append(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[13], ARGV[6], ARGV[7], '')
save_heads()
for counter in string.gmatch(ARGV[10], '[^,]+') do redis.call('HINCRBY', KEYS[4], counter, 1) end
if ARGV[11] ~= '' then count_cost(KEYS[6], ARGV[11], KEYS[1]) end
if KEYS[3] ~= KEYS[1] then
  redis.call('HSET', KEYS[3], 'flow', ARGV[3], 'phone', ARGV[2])
  -- A status callback may already have come: never overwrite it with 'queued'.
  redis.call('HSETNX', KEYS[3], 'status', 'queued')
  redis.call('HSETNX', KEYS[3], 'rank', 3)
  redis.call('EXPIRE', KEYS[3], ARGV[8])
end
return 1
