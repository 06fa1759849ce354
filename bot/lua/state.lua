-- A number's state in a flow (see bot/states.py): the flow's hash for the number's last four
-- digits, field = the digits before them, value = state letter, asked at in whole seconds and
-- touched in milliseconds, base 36 ("a" .. asked .. "." .. touched). CODES and NAMES come from
-- bot/states.py.
local B36 = '0123456789abcdefghijklmnopqrstuvwxyz'
local B36_OF = {}  -- numbers this call already read or wrote in base 36
local function base36(n)
  n = math.floor(tonumber(n))
  local known = B36_OF[n]
  if known then return known end
  local out, rest = '', n
  repeat
    local digit = rest % 36
    out = string.sub(B36, digit + 1, digit + 1) .. out
    rest = (rest - digit) / 36
  until rest == 0
  B36_OF[n] = out
  return out
end
local function slot(phone) return string.sub(phone, 2, -5) end
-- Return the state, asked at and touched (seconds), or nil when the flow holds nothing on it.
local function get_state(key, phone)
  local raw = redis.call('HGET', key, slot(phone))
  if not raw then return nil end
  local code, asked_text, touched_text = string.match(raw, '^(%l)(%w+)%.(%w+)$')
  local asked_at, touched_ms = tonumber(asked_text, 36), tonumber(touched_text, 36)
  B36_OF[asked_at], B36_OF[touched_ms] = asked_text, touched_text
  return NAMES[code], asked_at, touched_ms / 1000
end
local function set_state(key, phone, state, asked_at, touched)
  local touched_ms = math.floor(tonumber(touched) * 1000 + 0.5)
  redis.call('HSET', key, slot(phone), CODES[state] .. base36(asked_at) .. '.' .. base36(touched_ms))
end
local function del_state(key, phone)
  redis.call('HDEL', key, slot(phone))
end
