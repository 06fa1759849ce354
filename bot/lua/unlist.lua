-- Take a flow off the registry of flows holding numbers (Store.retired reads it) once it holds none,
-- in one step: a number a process still running the flow writes meanwhile puts it back (step.lua,
-- admit.lua add it as they write).
-- KEYS: the registry, then the flow's keys that hold numbers whatever their name's end (an earlier
-- version's state hash, queued bitmap, batches, admitted and parked lists).
-- ARGV: the flow's id, the prefix of its state hashes' names (bot/states.py: 5 digits follow).
-- Returns 1 if taken off, 0 if it still holds a number.
if redis.call('EXISTS', unpack(KEYS, 2)) > 0 then return 0 end
local names = {}
for n = 0, 99999 do
  names[#names + 1] = ARGV[2] .. string.format('%05d', n)
  if #names == 1000 then
    if redis.call('EXISTS', unpack(names)) > 0 then return 0 end
    names = {}
  end
end
redis.call('SREM', KEYS[1], ARGV[1])
return 1
