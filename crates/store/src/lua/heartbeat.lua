-- Renews a node's heartbeat. KEYS: node hash, alive key. ARGV: ttl ms, used slots.
-- Returns -1 unknown, -2 declared lost, 1 draining, 0 alive.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HGET', KEYS[1], 'lost') == '1' then return -2 end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
redis.call('HSET', KEYS[1], 'used', ARGV[2])
if redis.call('HGET', KEYS[1], 'draining') == '1' then return 1 end
return 0
