-- KEYS: ledger, head, the messages hash of the sent message's id (or the ledger key again when there
-- is no sent message: bot/lua/status.lua says what it holds), funnel,
-- the person's subjects hash, the flow's cost counts, its in-flight hash.
-- ARGV: now, phone, flow id, flow hash, event, text, provider sid, the messages hash's seconds to live, salt,
-- funnel counters
-- (comma-separated), the cost counts' field a message sent adds one to (costs.lua; '' for none),
-- the in-flight entry the outcome settles ('' for none: bot/witness.py; '?' and the entry: one it
-- leaves for the witness, only checked), the entry's state field, the number's HMAC ('-' for none),
-- the rank of a final status (bot/store.py STATUS_RANK).
-- A sent message is recorded once: a worker retrying after an answer lost with the connection logs nothing twice.
local phone, entry = ARGV[2], ARGV[12]
local checked = string.sub(entry, 1, 1) == '?'
if checked then entry = string.sub(entry, 2) end
if entry ~= '' and redis.call(checked and 'HEXISTS' or 'HDEL', KEYS[7], entry) == 0 then
  -- The outcome of a send no longer in flight, not yet recorded: the number was erased (or purged)
  -- while it was out. The entry says what went, but not to whom: nothing may hold the number again.
  phone = ''
end
local message = KEYS[3] ~= KEYS[1] and redis.call('HGET', KEYS[3], ARGV[7])
if message and string.match(message, '|([^|]*)$') ~= '' then return 0 end
begin(KEYS[5], ARGV[14], ARGV[9])
append(KEYS[1], KEYS[2], ARGV[1], phone, ARGV[3], ARGV[4], ARGV[5], ARGV[13], ARGV[6], ARGV[7], '')
save_heads()
for counter in string.gmatch(ARGV[10], '[^,]+') do redis.call('HINCRBY', KEYS[4], counter, 1) end
if ARGV[11] ~= '' then count_cost(KEYS[6], ARGV[11], KEYS[1]) end
if KEYS[3] ~= KEYS[1] then
  -- A status callback may already have come: never overwrite its status with 'queued'. A final one
  -- found no flow to count it in (bot/lua/status.lua): it counts now, once, as the flow is filled in.
  redis.call('HSET', KEYS[3], ARGV[7], (message and string.match(message, '^(.*|)') or '3queued||') .. ARGV[3])
  redis.call('EXPIRE', KEYS[3], ARGV[8])
  local rank, status = string.match(message or '', '^(%d)([^|]*)|')
  if rank and tonumber(rank) >= tonumber(ARGV[15]) then redis.call('HINCRBY', KEYS[4], 'status:' .. status, '1') end
end
return 1
