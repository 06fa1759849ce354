-- Seal and append one chained entry. Fields are length-prefixed before hashing, so no text a
-- voter sends can shift one field into another; `seal` in Python computes the same digest.
local function seal(fields)
  local parts = {}
  for i = 1, #fields do parts[i] = #fields[i] .. ':' .. fields[i] end
  return redis.sha1hex(table.concat(parts))
end
-- Chain heads are read once and written once per script call, however many entries it adds.
local heads, touched_heads = {}, {}
local function append(lkey, hkey, fields)
  local prev = heads[hkey]
  if prev == nil then prev = redis.call('GET', hkey) or '' end
  fields[10] = prev
  local entry_hash = seal(fields)
  redis.call('XADD', lkey, '*', 'at', fields[1], 'phone', fields[2], 'flow', fields[3],
    'flow_hash', fields[4], 'event', fields[5], 'state', fields[6], 'text', fields[7],
    'sid', fields[8], 'reply', fields[9], 'prev', prev, 'hash', entry_hash)
  if heads[hkey] == nil then touched_heads[#touched_heads + 1] = hkey end
  heads[hkey] = entry_hash
end
local function save_heads()
  for _, hkey in ipairs(touched_heads) do redis.call('SET', hkey, heads[hkey]) end
end
