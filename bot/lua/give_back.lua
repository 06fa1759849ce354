-- Give back content message N that a send never brought to the provider (throttled, its queue full),
-- so that a later try releases it again (release.lua): clear the number's bit, only while it is still
-- set (the release that set it is the one giving it back), log it, and count the message unsent.
-- KEYS: the content-N bitmap, ledger, head, funnel, subjects hash, the flow's in-flight hash.
-- ARGV: phone, now, flow id, flow hash, N, why, salt, the in-flight entry the witness read ('' for a
-- worker's own give-back: bot/witness.py), the number's HMAC.
-- Returns 1 if given back, 0 if the bit was clear already (an erasure took the number meanwhile) or,
-- for the witness, the entry it read is no longer there (released again since).
local field, expected = ARGV[1] .. '|' .. ARGV[5], ARGV[8]
if expected ~= '' and redis.call('HGET', KEYS[6], field) ~= expected then return 0 end
local offset = bit_of(ARGV[1])
if not offset or redis.call('SETBIT', KEYS[1], offset, '0') == 0 then
  redis.call('HDEL', KEYS[6], field)
  return 0
end
begin(KEYS[5], ARGV[9], ARGV[7])
append(KEYS[2], KEYS[3], ARGV[2], ARGV[1], ARGV[3], ARGV[4], 'give_back:' .. ARGV[5], '', ARGV[6], '', '')
save_heads()
redis.call('HINCRBY', KEYS[4], 'content:' .. ARGV[5], -1)
-- Given back by the witness, the number still has to go on a batch again: the entry says so until then.
if expected == '' then
  redis.call('HDEL', KEYS[6], field)
else
  redis.call('HSET', KEYS[6], field, 'again|' .. expected)
end
return 1
