-- What a step's answer leaves in the ledger (loaded between ledger.lua and step.lua, it wraps `append`).
-- The texts TwiML answers an inbound text with are counted for the day's costs (costs.lua) where the
-- ledger records them: once, when the text is first processed, never when a replay (a Twilio retry,
-- reconcile) brings the same answer back. When TwiML does not carry them (plan.twiml false: reconcile
-- sends each text itself and logs it as sent with the provider's id), the entry records no reply and
-- counts nothing.
-- KEYS end with each flow's cost counts and ARGV with the day its timezone gives `now`, flows in order.
local logged = append
append = function(lkey, hkey, at, phone, flow, flow_hash, event, move, text, sid, reply)
  if reply ~= '' and not plan.twiml then reply = '' end
  logged(lkey, hkey, at, phone, flow, flow_hash, event, move, text, sid, reply)
  if reply == '' then return end
  local flows = plan.flows
  for i = 1, #flows do
    if flows[i].id == flow then
      local key, day, parts = KEYS[#KEYS - #flows + i], ARGV[#ARGV - #flows + i], flows[i].parts
      for _, said in ipairs(cjson.decode(reply)) do
        count_cost(key, day .. '|' .. (parts[said] or 'reply|1'), lkey)
      end
    end
  end
end
