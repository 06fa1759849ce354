-- KEYS: this generation's hash of answers for the text's id (bot/keys.py answered_key), the person's
-- subjects hash, then per candidate flow: the number's state hash, ledger, head, suppression, funnel,
-- first content, queued; then, with plan.inflight, the first flow's in-flight hash; then the cost
-- counts of bot/lua/answers.lua.
-- ARGV: phone, suppression hmac, now, inbound body, message sid ('' for none), salt, then now again
-- as states store it (whole seconds and milliseconds, base 36) and its hour (hours since 1970), and
-- the voter's calendar region for the first flow ('-' to keep the one stored), the detail that
-- follows the event of a step no text brought ('' for none: see Store.claim), the in-flight entry a
-- release expects ('' for none: see below), the seconds the hash of answers has left to live, the
-- keyed digest an inbound text is known by for good ('' for none: bot/keys.py seen_slot), '1' if that
-- name is the provider's own for good (Twilio's sids; not OVHcloud's, see Store.known_as), then the
-- days of bot/lua/answers.lua.
-- `plan` (what the step does, per state, and the flows' texts) is compiled in: see _plan in bot/store.py.
-- This script runs for every text a voter sends, inside Redis: it keeps to plain string work and
-- passes strings, not numbers, to commands (Redis prints a Lua number with a slow "%.17g").
local phone, digest, now, body, message_sid = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now_s36, now_ms36, now_hour, given_region, detail = ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local seen, certain = ARGV[14], ARGV[15] == '1'
local seen_key, seen_field = 'accord:seen:' .. string.sub(seen, 1, SEEN_BUCKET),
  string.sub(seen, SEEN_BUCKET + 1, SEEN_BUCKET + SEEN_FIELD)
local function known() return seen ~= '' and redis.call('HEXISTS', seen_key, seen_field) == 1 end
if message_sid ~= '' then
  local kept = answered(KEYS[1], message_sid)
  if kept then return answer_of(kept) end
  -- Known for good once processed: its answer, entries and seal records may all be gone since. Before
  -- the objection below, when the name is certain: the text's own was written when it came, and
  -- written anew it would take back every START since.
  if certain and known() then
    return cjson.encode({flow = plan.flows[1].id, from = 'new', to = 'new', refused = 'replayed', replayed = true})
  end
end
begin(KEYS[2], digest, ARGV[6])
local open, flows = plan.open, plan.flows
-- An objection is written before anything else is read: no record, however damaged, can keep it
-- from holding. Written anew, it also takes back every START since (see `objects` in state.lua).
if plan.objection then
  for i = 1, #flows do
    redis.call('HSET', KEYS[7 * i - 1], digest, now)
    redis.call('SADD', 'accord:objection-lists', flows[i].controller)  -- Store.objection_lists reads it
  end
end
-- Flow i's keys are KEYS[7 * i - 5 + n], n = 1 (state) .. 7 (queued).
local states, asked, asked36, regions, unreadable, chosen, best = {}, {}, {}, {}, {}, 1, -1
local recorded = {}  -- flows holding a record of the number (even one that cannot be read)
for i = 1, #flows do
  local state, asked_at, touched, stored, region = get_state(KEYS[7 * i - 4], phone)
  recorded[i] = state ~= nil
  if state then
    states[i], asked[i], asked36[i], regions[i] = state, asked_at, stored, region
    -- The flow with an open question is the one being answered; else the latest conversation.
    local rank = touched + (open[state] and 1e12 or 0)
    if rank > best then chosen, best = i, rank end
  else
    states[i], asked[i], asked36[i], regions[i] = 'new', 0, '0', ''
    if state == false then
      -- Whatever this text answers, it may be that record's question: refused rather than misread.
      states[i] = 'unreadable'
      unreadable[#unreadable + 1] = flows[i].id
      if 2e12 > best then chosen, best = i, 2e12 end
    end
  end
end
if plan.first then chosen = 1 end
if given_region ~= '-' then regions[1] = given_region end
-- START answers the objection that holds on this sender, whatever the record says: a record the
-- retention purge reduced to the HMAC, or a flow stopped by a STOP sent to another sender.
local objected = {}
if plan.trigger == 'start' then
  for i = 1, #flows do
    if states[i] ~= 'opted_out' and states[i] ~= 'unreadable'
        and objects(redis.call('HGET', KEYS[7 * i - 1], digest), flows[i].sender) then
      objected[i] = true
    end
  end
end
local now_seconds = tonumber(now)
local function refuse(why)
  local state = states[chosen]
  return cjson.encode({flow = flows[chosen].id, from = state, to = state, refused = why, unreadable = unreadable,
                       replayed = why == 'replayed' or nil})
end
-- A text whose answer has expired (35 to 70 days), sent again: its sid is in one of the voter's own
-- inbound entries, or in a seal record once they were archived. Refused, or a kept copy of a signed
-- "oui" would count as consent anew after a "non". (An objection was written above all the same:
-- nothing may keep one from holding.)
if message_sid ~= '' and plan.event == 'in' then
  -- A name that two texts might share (an OVHcloud id from a service the settings no longer name):
  -- after the objection, which a genuine STOP must never lose to another text's record.
  if not certain and known() then return refuse('replayed') end
  -- Texts processed before the record above was kept (bot/migrate.py fills it): by the entries and
  -- seal records holding their id.
  local checked = {}
  for i = 1, #flows do
    local seal = get_seal(KEYS[7 * i - 4], phone)  -- those archived off Redis (bot/personal_archive.py)
    if seal and seal_names(seal, message_sid) then return refuse('replayed') end
    checked[flows[i].id] = true
  end
  -- And in every other flow that ever sealed texts: one retired since, or on another sender now,
  -- still holds those answered then (bot/personal_archive.py list_sealed_flows).
  for _, id in ipairs(redis.call('SMEMBERS', 'accord:sealed-flows')) do
    if not checked[id] then
      local seal = seal_in(id, phone)
      if seal and seal_names(seal, message_sid) then return refuse('replayed') end
    end
  end
  local found = person_id()
  if found then
    local held = redis.pcall('HVALS', 'accord:person:' .. found)  -- a damaged key must not stop the text
    for _, value in ipairs(held.err and {} or held) do
      if string.find(value, '"' .. message_sid .. '"', 1, true) and inbound_sid(value) == message_sid then
        return refuse('replayed')
      end
    end
  end
end
-- Only an objection may move a number whose record cannot be read: anything else waits for a person.
if states[chosen] == 'unreadable' and not plan.objection then return refuse('unreadable record') end
-- The consent request's in-flight entry (bot/witness.py): a claim writes it, and a release takes it
-- back. A release the witness asks for names the entry it read: it holds only while that very claim
-- does (nobody claimed the number again since, nor moved it on: an answer, a STOP).
local ikey, ifield, expected = plan.inflight and KEYS[7 * #flows + 3], phone .. '|0', ARGV[12]
if plan.inflight and expected ~= '' then
  if redis.call('HGET', ikey, ifield) ~= expected then return refuse('claimed again') end
  if states[chosen] ~= 'asked' or asked[chosen] ~= tonumber(string.match(expected, '^%d+')) then
    redis.call('HDEL', ikey, ifield)
    return refuse('moved on')
  end
end
if plan.check_suppressed then
  -- A claim refused leaves a number never asked unqueued: no bit may say it was on a list, and a
  -- later round may queue it again (the objection, or the other question, is checked again then).
  local function unqueue(why)
    local offset = states[chosen] == 'new' and bit_of(phone)
    if offset then redis.call('SETBIT', KEYS[7 * chosen + 2], offset, '0') end
    return refuse(why)
  end
  if objects(redis.call('HGET', KEYS[7 * chosen - 1], digest), flows[chosen].sender) then
    return unqueue('suppressed')
  end
  -- Another flow's question still open on this sender: a YES now would be ambiguous.
  for i = 2, #flows do
    if open[states[i]] and now_seconds - asked[i] < flows[i].expiry then
      return unqueue('waiting: open question from ' .. flows[i].id)
    end
  end
end

-- Where a French mobile sits in the bitmaps of who was queued and who received which content.
local offset = bit_of(phone)

-- Apply the step to flow i; the lead flow is the conversation the text answers.
local function apply(i, lead)
  local flow, base = flows[i], 7 * i - 5
  local lkey, hkey, skey, fkey = KEYS[base + 2], KEYS[base + 3], KEYS[base + 4], KEYS[base + 5]
  local before, asked_before = states[i], asked[i]
  local state, stored_asked = before, asked36[i]
  if objected[i] then state = 'opted_out' end
  if open[state] and now_seconds - asked_before >= flow.expiry then
    append(lkey, hkey, now, phone, flow.id, flow.hash, 'expire', state .. '>expired', '', '', '')
    state = 'expired'
  end
  -- The voter's own calendar decides whether campaign texts may go now (plan.shut: regions shut).
  local steps = plan.steps
  -- A region this version does not know is shut: the workers send it nothing either.
  if not lead then steps = plan.others
  elseif plan.shut[regions[i]] or not plan.known[regions[i]] then steps = plan.steps_shut end
  local step = steps[state]  -- "dest|say,say..."
  local dest, said = state, ''
  if step then dest, said = string.match(step, '^([^|]*)|(.*)$') end
  local says, texts = {}, {}
  if lead and said ~= '' then
    for say in string.gmatch(said, '[^,]+') do
      -- Nobody gets the same content twice: a YES after a NO is confirmed, but content 1 went already.
      -- Marking it sent answers whether it was: SETBIT returns the bit it replaces. Nor does anyone
      -- whose objection to the controller still holds on this sender (made on another sender).
      if not (say == 'content' and (objects(redis.call('HGET', skey, digest), flow.sender)
                                    or (offset and redis.call('SETBIT', KEYS[base + 6], offset, '1') == 1))) then
        says[#says + 1], texts[#texts + 1] = say, flow.texts[say]
      end
    end
  end
  local inbound = lead and plan.event == 'in'
  if inbound then
    local reply = ''
    if #texts > 0 then reply = cjson.encode(texts) end
    append(lkey, hkey, now, phone, flow.id, flow.hash, plan.inbound_event, state .. '>' .. dest, body, message_sid,
      reply)
  elseif step then
    local event = plan.trigger
    if lead and detail ~= '' then event = event .. ':' .. detail end
    append(lkey, hkey, now, phone, flow.id, flow.hash, event, state .. '>' .. dest, texts[1] or body,
      message_sid, '')
  end
  local renewed = dest == 'asked' and state ~= 'asked'  -- the clock runs from the request
  if renewed then stored_asked = now_s36 end
  if step or inbound or state ~= before or (lead and given_region ~= '-') then
    set_state(KEYS[base + 1], phone, dest, stored_asked, now_ms36, regions[i])
    -- The flow's first record of the number: Store.retired finds the flow there once its file is
    -- removed. A flow holding a record stays listed (unlist.lua), so a record rewritten needs no more.
    if not recorded[i] then redis.call('SADD', 'accord:held-flows', flow.id) end
  end
  -- Keep the funnel's counts (Store.funnel adds them up per state): texts answered per hour, for the
  -- console's chart; one field per move, a text's ("i:from>to") apart from any other's ("m:from>to");
  -- and open questions per hour asked, for lazy expiry. An unreadable record's state was counted
  -- before it was damaged, under a state nobody knows now: "?".
  if inbound then redis.call('HINCRBY', fkey, 'answers:' .. now_hour, '1') end
  if before ~= dest then
    local from = before == 'unreadable' and '?' or before
    redis.call('HINCRBY', fkey, (inbound and 'i:' or 'm:') .. from .. '>' .. dest, '1')
  end
  -- An open question counts in the hour it was asked: it leaves it when answered, or asked again.
  local was_open, is_open = open[before], open[dest]
  if was_open ~= is_open or renewed then
    local asked_hour = string.format('%d', math.floor(asked_before / 3600))
    if was_open then redis.call('HINCRBY', fkey, 'h:' .. asked_hour, '-1') end
    if is_open then redis.call('HINCRBY', fkey, 'h:' .. (renewed and now_hour or asked_hour), '1') end
  end
  if offset then
    -- Asked once is asked for good: the flow remembers it even after retention purges the rest.
    if dest == 'asked' then redis.call('SETBIT', KEYS[base + 7], offset, '1') end
    -- Unless it goes back to new: its request certainly never went (released), or it texted START.
    -- Then a later round may queue it again.
    if dest == 'new' and state ~= 'new' then redis.call('SETBIT', KEYS[base + 7], offset, '0') end
  end
  -- START lifts the controller's objection for this sender only: every other sender keeps it.
  if state == 'opted_out' and dest ~= 'opted_out' then lift(skey, digest, flow.sender) end
  return state, dest, says
end

local from, to, says = apply(chosen, true)
if plan.inflight then
  if to == 'asked' and from ~= 'asked' then
    redis.call('HSET', ikey, ifield, now .. '|' .. regions[chosen] .. '|' .. detail)
  elseif from == 'asked' and to == 'new' then
    -- Given back by the witness, the number still has to go on a batch again: the entry says so until then.
    if expected == '' then
      redis.call('HDEL', ikey, ifield)
    else
      redis.call('HSET', ikey, ifield, 'again|' .. expected)
    end
  end
end
if plan.everywhere then
  -- An objection ends sending for every flow on this sender and every controller behind them; a
  -- START there makes each of them askable again (the lead flow asks at once).
  for i = 1, #flows do
    if i ~= chosen then apply(i, false) end
  end
end
save_heads()
if next(unreadable) == nil then unreadable = nil end  -- kept for every text: no empty field in it
local answer = cjson.encode({flow = flows[chosen].id, from = from, to = to, says = says, unreadable = unreadable})
if message_sid ~= '' then
  -- Kept short (see answer_of in ledger.lua); one naming unreadable records, whole.
  local kept = answer
  if unreadable == nil then kept = flows[chosen].id .. '|' .. from .. '|' .. to .. '|' .. table.concat(says, ',') end
  redis.call('HSET', KEYS[1], message_sid, kept)
  redis.call('EXPIRE', KEYS[1], ARGV[13])
  if seen ~= '' then redis.call('HSET', seen_key, seen_field, '1') end
end
return answer
