-- Declares a node lost if its heartbeat expired (or, with ARGV[2] = '1',
-- removes a node that leaves): puts back what it was starting (mirrors
-- gridiron_domain::request::step(Event::NodeLost)), frees its routes, pool
-- places and key places, and returns its session ids.
-- The keys of its claims and sessions depend on data, so the caller reads
-- them first and passes them; if the claims, the pools or keys of the
-- claimed requests or the sessions changed meanwhile, nothing is done and
-- 'retry' is returned.
-- KEYS: node hash, alive, nodes set, claims, sessions, queue,
--       then per claim: request, pool running set, key running set;
--       then per session: route, pool running set, key running set.
-- ARGV: node, leaving, lost ttl ms, work channel, claim count,
--       then per claim: rid, pool ('' if none), key ('' if no limit);
--       then session count, then per session: sid, "rid pool[ key]".
-- Returns {'alive'}, {'retry'} or {'done', sid...}.
local node = ARGV[1]
if ARGV[2] ~= '1' and redis.call('EXISTS', KEYS[2]) == 1 then return {'alive'} end
local n = tonumber(ARGV[5])
local s = 6 + 3 * n
local m = tonumber(ARGV[s])
if redis.call('SCARD', KEYS[4]) ~= n or redis.call('HLEN', KEYS[5]) ~= m then return {'retry'} end
local function key_of(rk)
  local r = redis.call('HMGET', rk, 'owner', 'key_max')
  if (tonumber(r[2] or '') or 0) > 0 then return r[1] or '' end
  return ''
end
for i = 1, n do
  local rk = KEYS[3 * i + 4]
  if redis.call('SISMEMBER', KEYS[4], ARGV[3 * i + 3]) == 0 then return {'retry'} end
  if (redis.call('HGET', rk, 'pool') or '') ~= ARGV[3 * i + 4] then return {'retry'} end
  if key_of(rk) ~= ARGV[3 * i + 5] then return {'retry'} end
end
for j = 1, m do
  if redis.call('HGET', KEYS[5], ARGV[s + 2 * j - 1]) ~= ARGV[s + 2 * j] then return {'retry'} end
end
local requeued, freed = 0, 0
for i = 1, n do
  local rid, rk = ARGV[3 * i + 3], KEYS[3 * i + 4]
  if ARGV[3 * i + 4] ~= '' then freed = freed + redis.call('SREM', KEYS[3 * i + 5], rid .. '@' .. node) end
  if ARGV[3 * i + 5] ~= '' then freed = freed + redis.call('SREM', KEYS[3 * i + 6], rid .. '@' .. node) end
  local holder = redis.call('HMGET', rk, 'state', 'node', 'score', 'seq')
  if holder[1] == 'claimed' and holder[2] == node then
    redis.call('HSET', rk, 'state', 'waiting')
    redis.call('HDEL', rk, 'node', 'epoch')
    redis.call('ZADD', KEYS[6], holder[3] or holder[4], rid)
    requeued = requeued + 1
  end
end
redis.call('DEL', KEYS[4])
local out = {'done'}
local k = 6 + 3 * n
for j = 1, m do
  local sid, v = ARGV[s + 2 * j - 1], ARGV[s + 2 * j]
  out[#out + 1] = sid
  redis.call('DEL', KEYS[k + 3 * j - 2])
  local rid, pool, key = string.match(v, '^(%S*) ?(%S*) ?(.*)$')
  if pool and pool ~= '' then freed = freed + redis.call('SREM', KEYS[k + 3 * j - 1], rid .. '@' .. node) end
  if key and key ~= '' then freed = freed + redis.call('SREM', KEYS[k + 3 * j], rid .. '@' .. node) end
end
redis.call('DEL', KEYS[5])
redis.call('SREM', KEYS[3], node)
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[1], KEYS[2])
else
  redis.call('HSET', KEYS[1], 'lost', '1')
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
-- Requeued requests, or places of pools and keys freed for requests waiting elsewhere.
if requeued > 0 then
  redis.call('PUBLISH', ARGV[4], 'requeued')
elseif freed > 0 then
  redis.call('PUBLISH', ARGV[4], 'freed')
end
return out
