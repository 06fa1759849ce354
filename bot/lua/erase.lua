-- Erase what is held on one number in some flows, keeping only the suppression HMAC.
-- KEYS: subject key, then per flow: the number's state hash, ledger, head, funnel, queued bitmap, suppression
-- hash; then the provider-message keys of the number's sent texts.
-- ARGV: phone, suppression hmac, now, salt, number of flows, '1' to erase the whole person (all
-- their flows) or '0' for only these flows, '1' to also record an objection, then per flow: flow
-- id, flow hash, number of content messages.
-- Returns the number of personal ledger entries erased per flow, as "flow=count,...".
local phone, digest, now = ARGV[1], ARGV[2], ARGV[3]
begin(KEYS[1], ARGV[4])
local flows, whole, object = tonumber(ARGV[5]), ARGV[6] == '1', ARGV[7] == '1'
local pid = redis.call('GET', KEYS[1])
local pkey = pid and ('accord:person:' .. pid)
local offset = bit_of(phone)
local open = {asked = true, clarified = true}
local report = {}
for i = 1, flows do
  local skey, lkey, hkey, fkey, qkey, supkey = KEYS[1 + 6 * (i - 1) + 1], KEYS[1 + 6 * (i - 1) + 2],
    KEYS[1 + 6 * (i - 1) + 3], KEYS[1 + 6 * (i - 1) + 4], KEYS[1 + 6 * (i - 1) + 5], KEYS[1 + 6 * (i - 1) + 6]
  local flow_id, flow_hash, contents = ARGV[8 + 3 * (i - 1)], ARGV[9 + 3 * (i - 1)], tonumber(ARGV[10 + 3 * (i - 1)])
  local erased = 0
  if pkey then
    for _, field in ipairs(redis.call('HKEYS', pkey)) do
      if string.sub(field, 1, #flow_id + 1) == flow_id .. '|' then
        redis.call('HDEL', pkey, field)
        erased = erased + 1
      end
    end
  end
  local state, asked_at = get_state(skey, phone)  -- false: held, but unreadable
  local held = state ~= nil or erased > 0
  if state ~= nil then
    del_state(skey, phone)
    -- '-': no longer held (see Store.funnel); '?': in a state nobody can read any more
    redis.call('HINCRBY', fkey, 'm:' .. (state or '?') .. '>-', 1)
    if open[state] then redis.call('HINCRBY', fkey, 'h:' .. math.floor(tonumber(asked_at) / 3600), -1) end
  end
  if whole and offset then
    redis.call('SETBIT', qkey, offset, '0')
    for n = 1, contents do redis.call('SETBIT', 'accord:content:' .. flow_id .. ':' .. n, offset, '0') end
  end
  -- The objection holds even where nothing was held yet: a request may still wait in a queued job.
  if object then redis.call('HSET', supkey, digest, now) end
  if held then
    -- The erasure itself is recorded, without the number.
    append(lkey, hkey, now, '', flow_id, flow_hash, 'erasure', '', erased .. ' entries erased', '', '')
    report[#report + 1] = flow_id .. '=' .. erased
  end
end
for n = 1 + 6 * flows + 1, #KEYS do redis.call('DEL', KEYS[n]) end
if pkey and (whole or redis.call('HLEN', pkey) <= 1) then
  redis.call('DEL', pkey)
  redis.call('DEL', KEYS[1])
end
save_heads()
return table.concat(report, ',')
