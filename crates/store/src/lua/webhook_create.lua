-- Adds a webhook subscription unless its id is taken.
-- KEYS[1] the subscription's hash, KEYS[2] the index of subscriptions.
-- ARGV[1] its definition (JSON), ARGV[2] its id, ARGV[3] when it was made (ms).
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'def', ARGV[1], 'failures', 0)
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
return 1
