-- KEYS: sid key, the person's subject key, then per candidate flow: the number's state hash, ledger, head,
-- suppression, funnel, first content, queued.
-- ARGV: phone, suppression hmac, now, inbound body, message sid ('' for none), salt.
-- `plan` (what the step does, per state, and the flows' texts) is compiled in: see _plan in bot/store.py.
local phone, digest, now, body, message_sid = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if message_sid ~= '' then
  local seen = redis.call('GET', KEYS[1])
  if seen then return seen end
end
begin(KEYS[2], ARGV[6])
local function key(i, n) return KEYS[2 + 7 * (i - 1) + n] end
local states, asked, chosen, best = {}, {}, 1, -1
for i = 1, #plan.flows do
  states[i], asked[i] = 'new', 0
  local state, asked_at, touched = get_state(key(i, 1), phone)
  if state then
    states[i], asked[i] = state, asked_at
    -- The flow with an open question is the one being answered; else the latest conversation.
    local rank = touched + (plan.open[state] and 1e12 or 0)
    if rank > best then chosen, best = i, rank end
  end
end
if plan.first then chosen = 1 end
local function refuse(why)
  local state = states[chosen]
  return cjson.encode({flow = plan.flows[chosen].id, from = state, to = state, refused = why})
end
if plan.check_suppressed then
  if redis.call('HEXISTS', key(chosen, 4), digest) == 1 then return refuse('suppressed') end
  -- Another flow's question still open on this sender: a YES now would be ambiguous.
  for i = 2, #plan.flows do
    if plan.open[states[i]] and tonumber(now) - tonumber(asked[i]) < plan.flows[i].expiry then
      return refuse('waiting: open question from ' .. plan.flows[i].id)
    end
  end
end

-- Keep the funnel's counts (Store.funnel adds them up per state): texts answered per hour, for the
-- console's chart; one field per move, a text's ("i:from>to") apart from any other's ("m:from>to");
-- and open questions per hour asked, for lazy expiry.
local function hour(epoch) return math.floor(tonumber(epoch) / 3600) end
local function count(fkey, from, dest, asked_before, asked_after, inbound)
  if inbound then redis.call('HINCRBY', fkey, 'answers:' .. hour(now), 1) end
  if from ~= dest then redis.call('HINCRBY', fkey, (inbound and 'i:' or 'm:') .. from .. '>' .. dest, 1) end
  local was_open, is_open = plan.open[from], plan.open[dest]
  if was_open and is_open and asked_before == asked_after then return end
  if was_open then redis.call('HINCRBY', fkey, 'h:' .. hour(asked_before), -1) end
  if is_open then redis.call('HINCRBY', fkey, 'h:' .. hour(asked_after), 1) end
end

-- Where a French mobile sits in the per-message bitmaps of who received which content.
local national = string.match(phone, '^%+33([67]%d%d%d%d%d%d%d%d)$')
local offset = national and (tonumber(national) - 600000000)

-- Apply the step to flow i; the lead flow is the conversation the text answers.
local function apply(i, lead)
  local flow = plan.flows[i]
  local skey, lkey, hkey, supkey, fkey = key(i, 1), key(i, 2), key(i, 3), key(i, 4), key(i, 5)
  local before, asked_before = states[i], asked[i]
  local state, asked_at = before, asked_before
  local function log(event, move, text, sid, reply)
    append(lkey, hkey, {now, phone, flow.id, flow.hash, event, move, text, sid, reply})
  end
  if plan.open[state] and tonumber(now) - tonumber(asked_at) >= flow.expiry then
    log('expire', state .. '>expired', '', '', '')
    state = 'expired'
  end
  local step = plan.steps[state]  -- "dest|say,say..."
  local dest, says, texts = state, {}, {}
  if step then
    local said
    dest, said = string.match(step, '^([^|]*)|(.*)$')
    for say in string.gmatch(said, '[^,]+') do says[#says + 1] = say end
  end
  if not lead then says = {} end
  -- Nobody gets the same content twice: a YES after a NO is confirmed, but content 1 went already.
  -- Marking it sent answers whether it was: SETBIT returns the bit it replaces.
  local kept = {}
  for _, say in ipairs(says) do
    if not (say == 'content' and offset and redis.call('SETBIT', key(i, 6), offset, 1) == 1) then
      kept[#kept + 1] = say
    end
  end
  says = kept
  for _, say in ipairs(says) do texts[#texts + 1] = flow.texts[say] end
  local inbound = lead and plan.event == 'in'
  if inbound then
    local reply = ''
    if #texts > 0 then reply = cjson.encode(texts) end
    log('in:' .. plan.reply, state .. '>' .. dest, body, message_sid, reply)
  elseif step then
    log(plan.trigger, state .. '>' .. dest, texts[1] or body, message_sid, '')
  end
  if dest == 'asked' and state ~= 'asked' then asked_at = now end  -- the clock runs from the request
  if step or inbound or state ~= before then set_state(skey, phone, dest, asked_at, now) end
  count(fkey, before, dest, asked_before, asked_at, inbound)
  -- Asked once is asked for good: the flow remembers it even after retention purges the rest.
  if dest == 'asked' and offset then redis.call('SETBIT', key(i, 7), offset, 1) end
  -- Unless it goes back to new: its request certainly never went (released), or it texted START
  -- while the window was shut. Then a later round may queue it again.
  if dest == 'new' and state ~= 'new' and offset then redis.call('SETBIT', key(i, 7), offset, 0) end
  if dest == 'opted_out' and state ~= 'opted_out' then redis.call('HSET', supkey, digest, now) end
  if state == 'opted_out' and dest ~= 'opted_out' then redis.call('HDEL', supkey, digest) end
  return state, dest, says
end

local from, to, says = apply(chosen, true)
if plan.everywhere then
  -- An objection ends sending for every flow on this sender and every controller behind them.
  for i = 1, #plan.flows do
    if i ~= chosen then apply(i, false) end
  end
end
save_heads()
local answer = cjson.encode({flow = plan.flows[chosen].id, from = from, to = to, says = says})
if message_sid ~= '' then redis.call('SET', KEYS[1], answer, 'EX', plan.sid_ttl) end
return answer
