-- Take numbers out of a stored batch (erasure, retention); drop the batch once nothing is left.
-- KEYS: the batch's key, the flow's index of batches, its list of admitted batches.
-- ARGV: the batch's id, then the numbers in E.164.
-- Returns how many items were taken out.
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
local gone = {}
for i = 2, #ARGV do gone[ARGV[i]] = true end
local kept, removed = {}, 0
for item in string.gmatch(value, '[^,]+') do
  if gone[string.match(item, '^[^/]*')] then removed = removed + 1 else kept[#kept + 1] = item end
end
if #kept == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('LREM', KEYS[3], 0, ARGV[1])
elseif removed > 0 then
  redis.call('SET', KEYS[1], table.concat(kept, ','))
end
return removed
