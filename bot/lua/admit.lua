-- Admit a batch of numbers to a round: skip those queued or asked before, those who objected,
-- and those with another flow's question open on the same sender; mark the rest queued.
-- KEYS: queued bitmap, state hash, suppression hash, funnel, then each sibling flow's state hash.
-- ARGV: now, the siblings' expiries (comma-separated seconds), '1' for a dry run (change nothing),
-- then phone, digest, bitmap offset triples (the offset as a string: Lua's number-to-string
-- conversion for GETBIT/SETBIT costs more than the bit operation).
-- Returns one letter per number: q queued, a already queued or asked, s suppressed, w waiting.
local now = tonumber(ARGV[1])
local expiries = {}
for seconds in string.gmatch(ARGV[2], '[^,]+') do expiries[#expiries + 1] = tonumber(seconds) end
local open = {asked = true, clarified = true}
local askable = {new = true, contacted = true}
local codes, counts = {}, {q = 0, a = 0, s = 0, w = 0}
local dry = ARGV[3] == '1'
for n = 4, #ARGV, 3 do
  local phone, digest, offset = ARGV[n], ARGV[n + 1], ARGV[n + 2]
  local record = redis.call('HGET', KEYS[2], phone)
  local code = 'q'
  if redis.call('HEXISTS', KEYS[3], digest) == 1 then
    code = 's'
  elseif redis.call('GETBIT', KEYS[1], offset) == 1 or (record and not askable[string.match(record, '^[^|]*')]) then
    code = 'a'
  else
    for i = 5, #KEYS do
      local other = redis.call('HGET', KEYS[i], phone)
      if other then
        local state, asked_at = string.match(other, '^([^|]*)|([^|]*)|')
        if open[state] and now - tonumber(asked_at) < expiries[i - 4] then
          code = 'w'
          break
        end
      end
    end
  end
  if code == 'q' and not dry then redis.call('SETBIT', KEYS[1], offset, 1) end
  codes[#codes + 1] = code
  counts[code] = counts[code] + 1
end
local names = {q = 'import:queued', a = 'import:already asked', s = 'import:suppressed', w = 'import:waiting'}
for code, total in pairs(counts) do
  if total > 0 and not dry then redis.call('HINCRBY', KEYS[4], names[code], total) end
end
return table.concat(codes)
