-- Keep the furthest status a sent message reached: never move it backwards.
-- KEYS: this generation's messages hash holding the message id, the previous generation's, and the
-- message's own key of earlier versions (bot/keys.py legacy_out_key), until that one expires.
-- ARGV: message id, status, its rank (bot/store.py STATUS_RANK), error code, seconds this generation's
-- hash has left to live, the rank of a final status (delivered, failed...).
-- A record is "RANKstatus|error|flow": the flow is '' while the sending is not logged yet (a status
-- callback may come first). Returns {1 if moved, the flow, the number (only an earlier version's has one)}.
-- A final status the message moves to counts once in its flow's funnel (bot/keys.py funnel_key), here:
-- the callback makes one round trip, and the count cannot miss a move nor follow one twice.
local sid, status, rank, err = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local function count(flow)
  if flow ~= '' and rank >= tonumber(ARGV[6]) then
    redis.call('HINCRBY', 'accord:funnel:' .. flow, 'status:' .. status, '1')
  end
end
local key = KEYS[1]
local record = redis.call('HGET', key, sid)
if not record then
  record = redis.call('HGET', KEYS[2], sid)
  if record then key = KEYS[2] end
end
if not record and redis.call('EXISTS', KEYS[3]) == 1 then
  local moved, flow = 0, redis.call('HGET', KEYS[3], 'flow') or ''
  if rank > tonumber(redis.call('HGET', KEYS[3], 'rank') or '0') then
    redis.call('HSET', KEYS[3], 'status', status, 'rank', ARGV[3], 'error', err)
    moved = 1
    count(flow)
  end
  return {moved, flow, redis.call('HGET', KEYS[3], 'phone') or ''}
end
local flow = record and string.match(record, '|([^|]*)$') or ''
if record and rank <= tonumber(string.sub(record, 1, 1)) then return {0, flow, ''} end
redis.call('HSET', key, sid, ARGV[3] .. status .. '|' .. err .. '|' .. flow)
if key == KEYS[1] then redis.call('EXPIRE', key, ARGV[5]) end
count(flow)
return {1, flow, ''}
