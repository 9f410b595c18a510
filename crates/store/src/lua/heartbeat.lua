-- Renews a node's heartbeat. KEYS: node hash, alive key. ARGV: ttl ms, used slots.
-- Returns -1 unknown, -2 declared lost, 1 draining, 0 alive.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HGET', KEYS[1], 'lost') == '1' then return -2 end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
-- The TTL is kept so that readers can tell the heartbeat's age from the alive
-- key's remaining time, on the store's clock alone.
redis.call('HSET', KEYS[1], 'used', ARGV[2], 'ttl', ARGV[1])
if redis.call('HGET', KEYS[1], 'draining') == '1' then return 1 end
return 0
