-- A ledger entry comes in two parts. The stream keeps what proves order and integrity: the time,
-- the flow and its version, the kind of event, a random person id, a commitment to the personal
-- fields, and the chain. The personal fields (number, event, state, exact texts, message ids) live
-- in the person's own hash, salted; erasing a person deletes that hash and the id's link to the
-- number, and leaves a chain that still verifies over entries no longer tied to anyone.
-- Fields are length-prefixed before hashing ("3:oui"), so no text can shift one field into another.
-- Each hashed text is written as one concatenation: no table nor part strings to build and collect.
-- Chain heads are read once and written once per script call, however many entries it adds.
local heads, touched_heads = {}, {}
local subject_hash, subject_digest, salt, entries, pid, person_key = nil, '', '', 0, nil, nil
-- The field of a number's subjects hash: the digits of its HMAC past those naming the hash (bot/keys.py
-- subject_slot); earlier versions named it by the whole rest of the HMAC.
local function subject_field(digest)
  return string.sub(digest, SUBJECT_BUCKET + 1, SUBJECT_BUCKET + SUBJECT_FIELD)
end
local function legacy_subject_field(digest)
  return string.sub(digest, SUBJECT_BUCKET + 1)
end
-- The random id standing for the number whose HMAC is `digest`, in its subjects hash `key`, or
-- false. One an earlier version kept under the long field, or in a key of its own, moves in. The
-- field this version writes is read first: a number it has seen costs one HGET.
local function find_pid(key, digest)
  local field = subject_field(digest)
  local found = redis.call('HGET', key, field)
  if found then return found end
  local long = legacy_subject_field(digest)
  found = redis.call('HGET', key, long)
  if found then
    redis.call('HSET', key, field, found)
    redis.call('HDEL', key, long)
    return found
  end
  local legacy = 'accord:subject:' .. digest
  found = redis.call('GET', legacy)
  if found then
    redis.call('HSET', key, field, found)
    redis.call('DEL', legacy)
  end
  return found
end
-- The provider's id of the voter's text an entry's personal fields record ('stored': a JSON list in
-- bot/ledger.py's STORED order, or the named fields of earlier versions), or nil for any other entry.
local function inbound_sid(stored)
  local read, entry = pcall(cjson.decode, stored)
  if not read or type(entry) ~= 'table' then return nil end
  local event, sid = entry[2] or entry.event, entry[5] or entry.sid
  if type(event) == 'string' and string.sub(event, 1, 3) == 'in:' and type(sid) == 'string' and sid ~= '' then
    return sid
  end
  return nil
end
-- The answer given to an inbound text, by the provider's id of the text (bot/keys.py answered_key):
-- in this generation's hash `key`, in the one before it (named from this one), or in the key of its
-- own an earlier version kept for 35 days. Returns the answer and the key holding it, or nil.
local function answered(key, sid)
  local generation, bucket = string.match(key, '^accord:answered:(%d+):(%x+)$')
  local before = 'accord:answered:' .. string.format('%d', tonumber(generation) - 1) .. ':' .. bucket
  local found = redis.call('HGET', key, sid)
  if found then return found, key end
  found = redis.call('HGET', before, sid)
  if found then return found, before end
  found = redis.call('GET', 'accord:sid:' .. sid)
  if found then return found, 'accord:sid:' .. sid end
  return nil
end
-- An answer as kept: "flow|from|to|say,say", 37 bytes less than its JSON, or JSON (earlier versions,
-- erasure's, one naming unreadable records). Returns the JSON the step script answers a replay with,
-- saying it is one (a rights request's answer is then no fresh link: bot/conversation.py).
local function answer_of(kept)
  local answer
  if string.sub(kept, 1, 1) == '{' then
    answer = cjson.decode(kept)
  else
    local flow, from, to, said = string.match(kept, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
    answer = {flow = flow, from = from, to = to, says = {}}
    for say in string.gmatch(said, '[^,]+') do answer.says[#answer.says + 1] = say end
  end
  answer.replayed = true
  return cjson.encode(answer)
end
-- This generation's hash of answers for a text's id, at `now` (seconds, as text).
local function answered_key(now, sid)
  return 'accord:answered:' .. string.format('%d', math.floor(tonumber(now) / ANSWER_PERIOD)) .. ':'
    .. string.sub(redis.sha1hex(sid), 1, ANSWER_BUCKETS)
end
-- Name the person (the subjects hash holding their random id, and their HMAC) and a fresh random
-- salt for this call's entries.
local function begin(key, digest, random)
  subject_hash, subject_digest, salt = key, digest, random
end
-- The random id of the number begin() named, or false: looked up once a call, however many ask.
local function person_id()
  if pid == nil then pid = find_pid(subject_hash, subject_digest) end
  return pid
end
local function person(phone)
  if phone == '' then return '-', 'accord:person:-' end
  if person_key == nil then
    if not person_id() then
      -- Drawn from this call's salt one way: the id is public (in the stream) and the salt opens the
      -- call's commitments, so the id must not give the salt away (the salt once served as the id).
      pid = string.sub(redis.sha1hex('person id:' .. salt), 1, 16)
      redis.call('HSET', subject_hash, subject_field(subject_digest), pid)
    end
    person_key = 'accord:person:' .. pid
  end
  return pid, person_key
end
-- Append one entry to the ledger lkey whose chain head is hkey. The fields: when, the number ('' for
-- none), the flow and its version, the event, the state move, the text, the provider's message
-- id and the reply (a JSON list, or '').
local function append(lkey, hkey, at, phone, flow, flow_hash, event, move, text, sid, reply)
  local prev = heads[hkey]
  if prev == nil then prev = redis.call('GET', hkey) or '' end
  entries = entries + 1
  local entry_salt = string.format('%s.%d', salt, entries)
  local id_pid, pkey = person(phone)
  -- string.format writes the lengths (Lua's own number-to-text is slow). Its %s takes only what this
  -- code or our store wrote: a short %s stops at a NUL byte, which a voter's text may hold.
  local commit = redis.sha1hex(string.format('%s%d:%s%d:%s%d:%s%d:', entry_salt, #phone, phone, #event, event,
    #move, move, #text) .. text .. string.format('%d:', #sid) .. sid .. string.format('%d:%s', #reply, reply))
  local kind = string.match(event, '^[^:]*')
  local entry_hash = redis.sha1hex(string.format('%d:%s%d:%s%d:%s%d:%s%d:%s%d:%s%d:%s', #at, at, #flow, flow,
    #flow_hash, flow_hash, #kind, kind, #id_pid, id_pid, #commit, commit, #prev, prev))
  local id = redis.call('XADD', lkey, '*', 'at', at, 'flow', flow, 'flow_hash', flow_hash,
    'kind', kind, 'pid', id_pid, 'commit', commit, 'prev', prev, 'hash', entry_hash)
  -- A JSON list in bot/ledger.py's STORED order: no field names repeated in every entry of every number.
  redis.call('HSET', pkey, flow .. '|' .. id, cjson.encode({phone, event, move, text, sid, reply, entry_salt}))
  if heads[hkey] == nil then touched_heads[#touched_heads + 1] = hkey end
  heads[hkey] = entry_hash
end
local function save_heads()
  for _, hkey in ipairs(touched_heads) do redis.call('SET', hkey, heads[hkey]) end
end
