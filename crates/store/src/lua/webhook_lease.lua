-- Takes a due delivery under a lease: it stays out of everyone else's reach
-- until the lease runs out (its score is the lease's end). A delivery whose
-- subscription is gone or disabled is dropped instead.
-- KEYS[1] the due deliveries, KEYS[2] the delivery's hash, KEYS[3] its
-- subscription's hash, KEYS[4] that subscription's pending deliveries.
-- ARGV[1] delivery id, ARGV[2] now (ms), ARGV[3] lease (ms), ARGV[4] holder,
-- ARGV[5] how long a finished delivery is remembered (ms).
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[2]) then return false end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return false
end
if redis.call('EXISTS', KEYS[3]) == 0 or redis.call('HEXISTS', KEYS[3], 'disabled') == 1 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[4], ARGV[1])
  redis.call('HSET', KEYS[2], 'state', 'done')
  redis.call('HDEL', KEYS[2], 'token')
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  return false
end
local n = redis.call('HINCRBY', KEYS[2], 'attempts', 1)
redis.call('HSETNX', KEYS[2], 'first_at', ARGV[2])
redis.call('HSET', KEYS[2], 'token', ARGV[4] .. '/' .. n)
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
return redis.call('HMGET', KEYS[2], 'webhook', 'event_id', 'event_type', 'body', 'attempts',
  'first_at', 'token')
