-- A number's state in a flow (see bot/states.py): the flow's hash for the number's last four
-- digits, field = the digits before them, value = state letter, asked at and touched in whole
-- seconds, base 36 ("a" .. asked .. "." .. touched). CODES comes from bot/states.py.
local NAMES = {}
for name, code in pairs(CODES) do NAMES[code] = name end
local B36 = '0123456789abcdefghijklmnopqrstuvwxyz'
local function base36(n)
  n = math.floor(tonumber(n))
  local out = ''
  repeat
    local rest = n % 36
    out = string.sub(B36, rest + 1, rest + 1) .. out
    n = (n - rest) / 36
  until n == 0
  return out
end
local function slot(phone) return string.sub(phone, 2, -5) end
-- Return the state, asked at and touched (seconds), or nil when the flow holds nothing on it.
local function get_state(key, phone)
  local raw = redis.call('HGET', key, slot(phone))
  if not raw then return nil end
  local code, asked_at, touched = string.match(raw, '^(%l)(%w+)%.(%w+)$')
  return NAMES[code], tonumber(asked_at, 36), tonumber(touched, 36)
end
local function set_state(key, phone, state, asked_at, touched)
  redis.call('HSET', key, slot(phone), CODES[state] .. base36(asked_at) .. '.' .. base36(touched))
end
local function del_state(key, phone)
  redis.call('HDEL', key, slot(phone))
end
