-- Release content message N to one number, at most once, and only if it consented and did not object.
-- KEYS: the number's state hash, suppression hash, content-N bitmap, ledger, head, funnel, subjects hash,
-- the flow's in-flight hash.
-- ARGV: phone, suppression hmac, now, flow id, flow hash, text, N, salt, the flow's sender, and the
-- voter's calendar region when a worker sends it: the release is then in flight until its outcome
-- is recorded (bot/witness.py); '-' for none.
-- Returns 'ok', or why not: 'suppressed', 'already', 'not a French mobile', 'unreadable record', or
-- the number's state.
local phone, digest, now = ARGV[1], ARGV[2], ARGV[3]
local state = get_state(KEYS[1], phone)
if state == false then return 'unreadable record' end
if state ~= 'consented' then return state or 'new' end
if objects(redis.call('HGET', KEYS[2], digest), ARGV[9]) then return 'suppressed' end
local offset = bit_of(phone)
if not offset then return 'not a French mobile' end
if redis.call('SETBIT', KEYS[3], offset, '1') == 1 then return 'already' end
begin(KEYS[7], digest, ARGV[8])
append(KEYS[4], KEYS[5], now, phone, ARGV[4], ARGV[5], 'content:' .. ARGV[7], '', ARGV[6], '', '')
save_heads()
redis.call('HINCRBY', KEYS[6], 'content:' .. ARGV[7], 1)
if ARGV[10] ~= '-' then redis.call('HSET', KEYS[8], phone .. '|' .. ARGV[7], now .. '|' .. ARGV[10] .. '|') end
return 'ok'
