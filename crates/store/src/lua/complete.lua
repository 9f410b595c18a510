-- Hands a claimed request's answer to its hub. Mirrors
-- gridiron_domain::request::step(Event::Complete): only the registration
-- that holds the claim (same node, same epoch) may answer; a retry of an
-- answer already given is told the same again. Safe to repeat.
-- With a started session's extras, it first records the session's route
-- (as add_session.lua) and the node's slots in use (as heartbeat.lua), so a
-- node answers in one round trip and a hub never sees the answer before them.
-- KEYS: request, node claims, pool running set, the hub's alive key, key
--       running set (of the request's key if it has a limit);
--       extras: node sessions, route, node hash, node alive key.
-- A failed start that frees a pool or key place announces work: a request
-- of that pool or key may wait for it on another node.
-- ARGV: rid, node, epoch, answer, started ('1' if a session runs for it),
--       ttl ms, the hub the caller believes owns the request, its channel,
--       the work channel; extras: sid, "rid pool[ key]", pool place ('' without a pool), key
--       place ('' without a key limit), slots in use, node heartbeat ttl ms.
-- Returns {'delivered'}, {'gone'}, {'fenced'}, or {'hub', HUB} when the
-- request belongs to another hub than passed (call again with its keys).
local st = redis.call('HGET', KEYS[1], 'state')
if st then
  local hub = redis.call('HGET', KEYS[1], 'hub') or ''
  if hub ~= ARGV[7] then return {'hub', hub} end
end
if ARGV[10] then
  redis.call('HSET', KEYS[6], ARGV[10], ARGV[11])
  redis.call('SET', KEYS[7], ARGV[2])
  if ARGV[12] ~= '' then redis.call('SADD', KEYS[3], ARGV[12]) end
  if ARGV[13] ~= '' then redis.call('SADD', KEYS[5], ARGV[13]) end
  if redis.call('EXISTS', KEYS[8]) == 1 and redis.call('HGET', KEYS[8], 'lost') ~= '1' then
    redis.call('SET', KEYS[9], '1', 'PX', ARGV[15])
    redis.call('HSET', KEYS[8], 'used', ARGV[14], 'ttl', ARGV[15])
  end
end
redis.call('SREM', KEYS[2], ARGV[1])
if ARGV[5] ~= '1' then
  local freed = redis.call('SREM', KEYS[3], ARGV[1] .. '@' .. ARGV[2])
    + redis.call('SREM', KEYS[5], ARGV[1] .. '@' .. ARGV[2])
  if freed > 0 then redis.call('PUBLISH', ARGV[9], 'freed') end
end
if not st then return {'gone'} end
local holder = redis.call('HMGET', KEYS[1], 'node', 'epoch')
local mine = holder[1] == ARGV[2] and holder[2] == ARGV[3]
if (st == 'done' or st == 'delivered') and mine then return {'delivered'} end
if st == 'cancelled' then return {'gone'} end
if st ~= 'claimed' or not mine then return {'fenced'} end
if redis.call('EXISTS', KEYS[4]) == 0 then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'reason', 'client_gone')
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  return {'gone'}
end
redis.call('HSET', KEYS[1], 'state', 'done', 'answer', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PUBLISH', ARGV[8], ARGV[1])
return {'delivered'}
