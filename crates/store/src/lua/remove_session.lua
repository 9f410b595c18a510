-- Forgets a session's route, pool place and key place. Which sets to touch
-- depends on the session's record, so the caller reads it first and passes
-- it: if it changed meanwhile, nothing is done and 'retry' is returned.
-- A freed pool or key place announces work: a request of that pool or key
-- may wait for it on another node.
-- With the usage extras, the node's slots in use are recorded too (as
-- heartbeat.lua), so an ended session costs its node one round trip.
-- KEYS: node sessions, route, pool running set and key running set of the
--       record read; extras: node hash, node alive key.
-- ARGV: sid, the record read ('' if none), pool place to free ('' if none),
--       key place to free ('' if none), the work channel; extras: slots in
--       use, node heartbeat ttl ms.
local v = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if v ~= ARGV[2] then return 'retry' end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
local freed = 0
if ARGV[3] ~= '' then freed = freed + redis.call('SREM', KEYS[3], ARGV[3]) end
if ARGV[4] ~= '' then freed = freed + redis.call('SREM', KEYS[4], ARGV[4]) end
if freed > 0 then redis.call('PUBLISH', ARGV[5], 'freed') end
if ARGV[6] and redis.call('EXISTS', KEYS[5]) == 1 and redis.call('HGET', KEYS[5], 'lost') ~= '1' then
  redis.call('SET', KEYS[6], '1', 'PX', ARGV[7])
  redis.call('HSET', KEYS[5], 'used', ARGV[6], 'ttl', ARGV[7])
end
return 'ok'
