-- Reserve a sender's next sending slot: evenly spaced at its rate, shared by every worker, timed
-- by Redis's own clock (workers' clocks may differ). Checks the flow's pause flag on the way.
-- KEYS: the sender's pace key, the flow's paused key. ARGV: microseconds between two messages.
-- Returns -1 when the flow is paused, else the microseconds to wait before sending.
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local slot = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
redis.call('SET', KEYS[1], string.format('%.0f', slot + tonumber(ARGV[1])), 'PX', 60000)
return slot - now
