-- Give back content message N that a send never brought to the provider (throttled, its queue full),
-- so that a later try releases it again (release.lua): clear the number's bit, only while it is still
-- set (the release that set it is the one giving it back), log it, and count the message unsent.
-- KEYS: the content-N bitmap, ledger, head, funnel, subject key.
-- ARGV: phone, now, flow id, flow hash, N, why, salt.
-- Returns 1 if given back, 0 if the bit was clear already (an erasure took the number meanwhile).
local offset = bit_of(ARGV[1])
if not offset then return 0 end
if redis.call('SETBIT', KEYS[1], offset, '0') == 0 then return 0 end
begin(KEYS[5], ARGV[7])
append(KEYS[2], KEYS[3], ARGV[2], ARGV[1], ARGV[3], ARGV[4], 'give_back:' .. ARGV[5], '', ARGV[6], '', '')
save_heads()
redis.call('HINCRBY', KEYS[4], 'content:' .. ARGV[5], -1)
return 1
