-- Records a node's session, its route, its pool place and its key place.
-- Safe to repeat (a node re-announces its sessions after the store lost them).
-- KEYS: node sessions, route, pool running set (unused without a pool),
--       key running set (unused without a key limit).
-- ARGV: sid, "rid pool[ key]", node, pool place ('' without a pool),
--       key place ('' without a key limit).
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
if ARGV[4] ~= '' then redis.call('SADD', KEYS[3], ARGV[4]) end
if ARGV[5] ~= '' then redis.call('SADD', KEYS[4], ARGV[5]) end
return 1
