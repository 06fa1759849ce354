-- A number's state in a flow (see bot/states.py): the flow's hash for the number's last SUFFIX
-- digits, field = the digits before them, value = state letter, asked at in whole seconds and
-- touched in milliseconds, base 36, then the voter's calendar region, an upper-case letter or
-- nothing ("a" .. asked .. "." .. touched .. region). CODES and NAMES come from bot/states.py.
-- Times are written in base 36 by the caller (Python), which also hands them to the script: the
-- script only cuts and copies them.
local function slot(phone) return string.sub(phone, 2, -SUFFIX - 1) end
-- Return the state, asked at and touched (seconds), asked at as stored (base 36) and the region;
-- nil when the flow holds nothing on it, false when what it holds cannot be read (each caller
-- decides what that means: an objection still holds, anything else is refused).
local function get_state(key, phone)
  local raw = redis.call('HGET', key, slot(phone))
  if not raw then return nil end
  local code, asked36, touched36, region = string.match(raw, '^(%l)([%l%d]+)%.([%l%d]+)(%u?)$')
  local state = code and NAMES[code]
  if not state then return false end
  return state, tonumber(asked36, 36), tonumber(touched36, 36) / 1000, asked36, region
end
-- asked36: whole seconds, touched36: milliseconds, both in base 36; region: '' or a letter.
local function set_state(key, phone, state, asked36, touched36, region)
  redis.call('HSET', key, slot(phone), CODES[state] .. asked36 .. '.' .. touched36 .. region)
end
-- Whether a controller's objection (its suppression hash's value for the number) holds for a
-- sender: it does unless the voter texted START to that very sender since. The value is when the
-- objection was made, then each sender it was lifted for: "when|+33612345678|+33798765432".
local function objects(value, sender)
  if not value then return false end
  return not string.find(value .. '|', '|' .. sender .. '|', 1, true)
end
-- Lift the objection in suppression hash `key` for one sender (after START there), if it holds.
local function lift(key, digest, sender)
  local value = redis.call('HGET', key, digest)
  if objects(value, sender) then redis.call('HSET', key, digest, value .. '|' .. sender) end
end
-- A number's seal record in a flow (bot/sealing.py), beside its state: the same field, in the hash of
-- the same name in its own family. It keeps the key its archived personal fields are sealed under.
local function seal_of(key) return 'accord:sealed:' .. string.sub(key, 14) end
local function get_seal(key, phone) return redis.call('HGET', seal_of(key), slot(phone)) end
-- A number's state hash in a flow named by its id (one the script holds no key of: retired, or on
-- another sender), and its seal record there.
local function state_key_in(flow_id, phone) return 'accord:state:' .. flow_id .. ':' .. string.sub(phone, -SUFFIX) end
local function seal_in(flow_id, phone) return get_seal(state_key_in(flow_id, phone), phone) end
-- Whether a seal record names the provider's id of an inbound text archived.
local function seal_names(seal, sid)
  for named in string.gmatch(string.sub(seal, 17), '!([^@!]+)') do
    if named == sid then return true end
  end
  return false
end
-- The state goes with its seal record: what was archived of the number in the flow is unreadable.
local function del_state(key, phone)
  redis.call('HDEL', key, slot(phone))
  redis.call('HDEL', seal_of(key), slot(phone))
end
-- Where a French mobile sits in a flow's bitmaps (queued, content sent): +33 6 00 00 00 00 is bit 0,
-- +33 7 00 00 00 00 bit 100,000,000. From the byte of the digit after +33 and the 8 digits after
-- it, worked out on the text alone, as commands take it (without leading zeros): Lua's text to
-- number (strtod) and back are slow, and Redis would print a Lua number with a slow "%.17g".
-- nil when the digit is neither 6 nor 7.
local function mobile_bit(lead, digits)
  if lead == 55 then return '1' .. digits end
  if lead == 54 then return string.match(digits, '^0*(%d+)$') end
end
-- The same for any number: nil when it is not a French mobile.
local function bit_of(phone)
  if not string.find(phone, '^%+33[67]%d%d%d%d%d%d%d%d$') then return nil end
  return mobile_bit(string.byte(phone, 4), string.sub(phone, 5))
end
