-- Store a batch of numbers for a worker's job, less those whose objection holds on the flow's
-- sender: an erasure (or a STOP) that came while a worker held the batch in memory must not find
-- the number written back when the worker defers or parks what is left of it.
-- KEYS: the batch's key, the flow's index of batches, the controller's suppression hash.
-- ARGV: the items ('phone', 'phone/postcode' or 'phone/region', comma-separated), their numbers'
-- digests back to back (32 characters each), the flow's sender, now, the batch's id, the flow's id.
-- Returns how many items were stored (none: no batch at all).
local digests, objected = {}, {}
for at = 1, #ARGV[2], 32 do digests[#digests + 1] = string.sub(ARGV[2], at, at + 31) end
for first = 1, #digests, 1000 do  -- Lua's unpack takes about 8,000 values
  local last = math.min(first + 999, #digests)
  local found = redis.call('HMGET', KEYS[3], unpack(digests, first, last))
  for i = first, last do objected[i] = found[i - first + 1] end
end
local kept, i = {}, 0
for item in string.gmatch(ARGV[1], '[^,]+') do
  i = i + 1
  if not objects(objected[i], ARGV[3]) then kept[#kept + 1] = item end
end
if #kept == 0 then return 0 end
redis.call('SET', KEYS[1], table.concat(kept, ','))
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
-- A flow holding numbers is on the registry rights requests read (Store.retired), even one whose file
-- was removed and the purge took off it, written by a worker that still runs it (unlist.lua).
redis.call('SADD', 'accord:held-flows', ARGV[6])
return #kept
