-- A flow's cost counts (accord:costs:FLOW): messages sent, one field per "day|kind|segments", added to
-- in the very call that logs each message as sent. They hold no number, so neither the retention
-- purge nor an erasure touches them, and the campaign's accounts can be drawn up long after
-- (Code électoral L52-12). 'since' names the first ledger entry counted: the cost report reads the
-- entries before it from the ledger, as versions without the counts left them.
local function count_cost(key, field, lkey)
  redis.call('HINCRBY', key, field, '1')
  if redis.call('HSETNX', key, 'since', '-') == 1 then
    redis.call('HSET', key, 'since', redis.call('XREVRANGE', lkey, '+', '-', 'COUNT', 1)[1][1])
  end
end
