-- Admit a batch of numbers to a round: skip those queued or asked before, those who objected,
-- and those with another flow's question open on the same sender; mark the rest queued.
-- The flow's own states are not read: a number asked once has its bit in the queued bitmap until
-- a purge moves it to the asked-before set as its HMAC (step.lua clears the bit only on a move
-- back to new), and one that objected is on the suppression list. The claim before each send
-- checks the state again anyway.
-- KEYS: queued bitmap, suppression hash, funnel, list of admitted batches, the batch's key, the
-- flow's index of batches, its asked-before set, then per number its state hash in each sibling
-- flow (the flows sharing the sender).
-- ARGV: now, the siblings' expiries (comma-separated seconds), '1' for a dry run (change nothing),
-- the numbers, back to back: each French mobile in E.164 (12 characters), then its digest (32),
-- the batch ('phone' or 'phone/region', comma-separated), the flow's sender (an objection lifted
-- there by START lets the number through), the batch's id, and the flow's id.
-- Returns one letter per number: q queued, a already queued or asked, s suppressed, w waiting.
-- The numbers queued are stored under the batch's id, which goes on the admitted list until the
-- importer has queued its job (which carries the id, never a number) and takes it off
-- (Store.settle); an import cut short in between leaves it there.
local now = tonumber(ARGV[1])
local expiries = {}
for seconds in string.gmatch(ARGV[2], '[^,]+') do expiries[#expiries + 1] = tonumber(seconds) end
local siblings = #expiries
local open = {asked = true, clarified = true}
local codes, counts = {}, {q = 0, a = 0, s = 0, w = 0}
local dry = ARGV[3] == '1'
local numbers, n = ARGV[4], 0
-- Who objected, asked once for the batch (Store.admit sends at most ADMIT_AT_MOST numbers: Lua's
-- unpack takes about 8,000 values).
local digests = {}
for at = 13, #numbers, 44 do digests[#digests + 1] = string.sub(numbers, at, at + 31) end
local suppressed = #digests > 0 and redis.call('HMGET', KEYS[2], unpack(digests)) or {}
-- Asked before, then purged: only the HMAC is left, in a set most flows do not have yet.
local purged = {}
if #digests > 0 and redis.call('EXISTS', KEYS[7]) == 1 then purged = redis.call('SMISMEMBER', KEYS[7], unpack(digests)) end
for at = 1, #numbers, 44 do
  -- Store.admit lets only French mobiles through, so bit_of's check of the whole number is left out.
  local offset = mobile_bit(string.byte(numbers, at + 3), string.sub(numbers, at + 4, at + 11))
  local code = 'q'
  -- Marking a number queued tells whether it was already: SETBIT returns the bit it replaces.
  local mark = dry and redis.call('GETBIT', KEYS[1], offset)
  if objects(suppressed[n + 1], ARGV[6]) then
    code = 's'
  elseif purged[n + 1] == 1 then
    code = 'a'
  elseif (mark or redis.call('SETBIT', KEYS[1], offset, '1')) == 1 then
    code = 'a'
  else
    local first_key = 7 + n * siblings
    for i = 1, siblings do
      local other, asked_at = get_state(KEYS[first_key + i], string.sub(numbers, at, at + 11))
      if other and open[other] and now - asked_at < expiries[i] then
        code = 'w'
        if not dry then redis.call('SETBIT', KEYS[1], offset, '0') end  -- not queued after all
        break
      end
    end
  end
  n = n + 1
  codes[n] = code
  counts[code] = counts[code] + 1
end
local letters = table.concat(codes)
if counts.q > 0 and not dry then
  local batch = ARGV[5]
  if counts.q < n then  -- only the numbers queued: none of the others is kept anywhere
    local kept, i = {}, 0
    for item in string.gmatch(batch, '[^,]+') do
      i = i + 1
      if codes[i] == 'q' then kept[#kept + 1] = item end
    end
    batch = table.concat(kept, ',')
  end
  redis.call('SET', KEYS[5], batch)
  redis.call('ZADD', KEYS[6], ARGV[1], ARGV[7])
  redis.call('RPUSH', KEYS[4], ARGV[7])
end
local names = {q = 'import:queued', a = 'import:already asked', s = 'import:suppressed', w = 'import:waiting'}
for code, total in pairs(counts) do
  if total > 0 and not dry then redis.call('HINCRBY', KEYS[3], names[code], total) end
end
-- The flow holds numbers (or counts of them): Store.retired finds it there once its file is removed.
if n > 0 and not dry then redis.call('SADD', 'accord:held-flows', ARGV[8]) end
return letters
