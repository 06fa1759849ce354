-- KEYS: out key. ARGV: status, its rank, error code, ttl. Never moves a status backwards.
local rank = tonumber(redis.call('HGET', KEYS[1], 'rank') or '0')
local moved = 0
if tonumber(ARGV[2]) > rank then
  redis.call('HSET', KEYS[1], 'status', ARGV[1], 'rank', ARGV[2], 'error', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  moved = 1
end
return {moved, redis.call('HGET', KEYS[1], 'flow') or '', redis.call('HGET', KEYS[1], 'phone') or ''}
