-- Erase what is held on one number in some flows, keeping only the suppression HMAC.
-- KEYS: the number's subjects hash, then per flow: the number's state hash, ledger, head, funnel, queued bitmap, asked-before
-- set; then the suppression hashes the objection goes to; then for each of the number's sent texts, the
-- messages hashes of this generation and the previous one and its key of earlier versions. Each flow's in-flight hash (bot/keys.py's in_flight_key) is named here from its id,
-- and so are the hashes holding the answer to each inbound text (bot/keys.py's answered_key).
-- ARGV: phone, suppression hmac, now, salt, number of flows, '1' to erase the whole person (all
-- their flows) or '0' for only these flows (retention), '1' to also record an objection, then per
-- flow: flow id, flow hash, number of content messages, the ids of its entries archived off Redis
-- (their fields sealed, bot/personal_archive.py: the erasure makes them unreadable), space-separated;
-- then the number of suppression hashes; then the provider's ids of the sent texts; then the ids of
-- the flows loaded and not erased here.
-- Returns the number of personal ledger entries erased per flow, as "flow=count,...".
local phone, digest, now = ARGV[1], ARGV[2], ARGV[3]
begin(KEYS[1], digest, ARGV[4])
local flows, whole, object = tonumber(ARGV[5]), ARGV[6] == '1', ARGV[7] == '1'
local pid = find_pid(KEYS[1], digest)
local pkey = pid and ('accord:person:' .. pid)
local offset = bit_of(phone)
local open = {asked = true, clarified = true}
local report = {}
-- The answer kept 35 to 70 days under an inbound text's sid (step.lua) says how the voter's state moved
-- ("asked" to "consented"): it stays, so that the text replayed still changes nothing, but says nothing
-- of them any more.
local function forget_answer(sid, flow_id)
  if not sid then return end
  local found, key = answered(answered_key(now, sid), sid)
  if not found then return end
  local neutral = cjson.encode({flow = flow_id, from = 'new', to = 'new'})
  if string.sub(key, 1, 11) == 'accord:sid:' then
    redis.call('SET', key, neutral, 'KEEPTTL', 'XX')  -- an earlier version's key of its own
  else
    redis.call('HSET', key, sid, neutral)
  end
end
for i = 1, flows do
  local skey, lkey, hkey, fkey, qkey, akey = KEYS[1 + 6 * (i - 1) + 1], KEYS[1 + 6 * (i - 1) + 2],
    KEYS[1 + 6 * (i - 1) + 3], KEYS[1 + 6 * (i - 1) + 4], KEYS[1 + 6 * (i - 1) + 5], KEYS[1 + 6 * (i - 1) + 6]
  local flow_id, flow_hash, contents = ARGV[8 + 4 * (i - 1)], ARGV[9 + 4 * (i - 1)], tonumber(ARGV[10 + 4 * (i - 1)])
  local erased, ids = 0, {}
  if pkey then
    local held_fields = redis.call('HGETALL', pkey)
    for f = 1, #held_fields, 2 do
      local field = held_fields[f]
      if string.sub(field, 1, #flow_id + 1) == flow_id .. '|' then
        redis.call('HDEL', pkey, field)
        erased = erased + 1
        ids[erased] = string.sub(field, #flow_id + 2)
        forget_answer(inbound_sid(held_fields[f + 1]), flow_id)
      end
    end
  end
  -- Inbound texts whose personal fields were archived off Redis (bot/personal_archive.py) are named
  -- in the seal record del_state deletes below.
  local seal = get_seal(skey, phone)
  if seal then
    for sid in string.gmatch(string.sub(seal, 17), '!([^@!]+)') do forget_answer(sid, flow_id) end
    for id in string.gmatch(ARGV[11 + 4 * (i - 1)], '%S+') do
      erased = erased + 1
      ids[erased] = id
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
  -- No bit of the number is left anywhere: a bit's offset is the number itself. Retention (not
  -- whole) keeps that the flow asked it as its HMAC in the asked-before set, so no round asks it
  -- again. GETBIT first: setting a bit to 0 would create megabytes of bitmap where there is none.
  if offset then
    if redis.call('GETBIT', qkey, offset) == 1 then
      redis.call('SETBIT', qkey, offset, '0')
      if not whole then redis.call('SADD', akey, digest) end
      held = true
    end
    if whole then redis.call('SREM', akey, digest) end
    for n = 1, contents do
      local ckey = 'accord:content:' .. flow_id .. ':' .. n
      if redis.call('GETBIT', ckey, offset) == 1 then redis.call('SETBIT', ckey, offset, '0') end
    end
  end
  -- Its in-flight entries (bot/witness.py): the consent request's, and each content message's.
  local fields = {phone .. '|0'}
  for n = 1, contents do fields[n + 1] = phone .. '|' .. n end
  if redis.call('HDEL', 'accord:in-flight:' .. flow_id, unpack(fields)) > 0 then held = true end
  if held then
    -- The erasure itself is recorded, without the number but with the entries it emptied: an entry
    -- whose personal fields are gone and that no erasure names was tampered with (ledger.verify).
    table.sort(ids)
    append(lkey, hkey, now, '', flow_id, flow_hash, 'erasure', '', erased .. ' entries erased' ..
      (erased > 0 and (': ' .. table.concat(ids, ' ')) or ''), '', '')
    report[#report + 1] = flow_id .. '=' .. erased
  end
end
-- The objection holds even where nothing was held yet: a request may still wait in a queued job.
local objections = tonumber(ARGV[8 + 4 * flows])
-- An erasure request objects anew (every START before it taken back); retention only makes sure the
-- objection is there, keeping the senders a START lifted it for.
if object then
  local write = whole and 'HSET' or 'HSETNX'
  for n = 1 + 6 * flows + 1, 1 + 6 * flows + objections do
    redis.call(write, KEYS[n], digest, now)
    -- Store.objection_lists reads the controllers there: the key's name after 'accord:suppressed:'.
    redis.call('SADD', 'accord:objection-lists', string.sub(KEYS[n], 19))
  end
end
local sent = 1 + 6 * flows + objections
local sids = (#KEYS - sent) / 3
for n = 1, sids do
  local sid = ARGV[8 + 4 * flows + n]
  redis.call('HDEL', KEYS[sent + 3 * n - 2], sid)
  redis.call('HDEL', KEYS[sent + 3 * n - 1], sid)
  redis.call('DEL', KEYS[sent + 3 * n])
end
-- The person goes once nothing of theirs is left: another flow's entry still there keeps them (only
-- a 'pid' field, which earlier versions wrote, may be left over), and so does another flow's state,
-- its entries maybe all archived, sealed under the person id (bot/personal_archive.py).
-- Every flow that sealed lines counts, loaded or not: a retired flow's open under the person id until
-- its own purge (bot/personal_archive.py list_sealed_flows).
local left = pkey and redis.call('HLEN', pkey) or 0
local kept = false
if not whole then
  local erased_here, others = {}, redis.call('SMEMBERS', 'accord:sealed-flows')
  for i = 1, flows do erased_here[ARGV[8 + 4 * (i - 1)]] = true end
  for n = 8 + 4 * flows + sids + 1, #ARGV do others[#others + 1] = ARGV[n] end
  for _, id in ipairs(others) do
    if not erased_here[id] and redis.call('HEXISTS', state_key_in(id, phone), slot(phone)) == 1 then
      kept = true
    end
  end
end
if pkey and (whole or ((left == 0 or (left == 1 and redis.call('HEXISTS', pkey, 'pid') == 1)) and not kept)) then
  redis.call('DEL', pkey)
  -- Under every name a version gave it: one running beside this one during an upgrade may have
  -- written the long field or the key after find_pid moved the id.
  redis.call('HDEL', KEYS[1], subject_field(digest), legacy_subject_field(digest))
  redis.call('DEL', 'accord:subject:' .. digest)
end
save_heads()
return table.concat(report, ',')
