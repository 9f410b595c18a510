-- Records a node's session, its route and its pool place. Safe to repeat
-- (a node re-announces its sessions after the store lost them).
-- KEYS: node sessions, route, pool running set (unused without a pool).
-- ARGV: sid, "rid pool", node, place ('' without a pool).
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
if ARGV[4] ~= '' then redis.call('SADD', KEYS[3], ARGV[4]) end
return 1
