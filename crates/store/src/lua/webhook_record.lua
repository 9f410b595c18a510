-- Records an attempt made under a lease, if the lease is still the caller's:
-- the delivery is due again or finished, the subscription's run of failures
-- grows or ends, and the log gets a line (`seq:json`, newest first, bounded).
-- KEYS[1] the delivery's hash, KEYS[2] the due deliveries, KEYS[3] the
-- subscription's pending deliveries, KEYS[4] the subscription's hash,
-- KEYS[5] its log, KEYS[6] its log's counter.
-- ARGV[1] delivery id, ARGV[2] lease token, ARGV[3] 'retry' or 'done',
-- ARGV[4] retry time (ms), ARGV[5] '1' if the attempt succeeded, ARGV[6] its
-- time (ms), ARGV[7] the log line (JSON), ARGV[8] lines kept, ARGV[9] how
-- long a finished delivery is remembered (ms).
-- Returns {1, failures, failing_since or ''}, or {0} if the lease was lost.
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then return {0} end
if redis.call('EXISTS', KEYS[4]) == 0 then return {0} end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return {0} end
redis.call('HDEL', KEYS[1], 'token')
if ARGV[3] == 'retry' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[1])
  redis.call('HSET', KEYS[1], 'state', 'done')
  redis.call('PEXPIRE', KEYS[1], ARGV[9])
end
local failures = 0
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[4], 'failures', 0)
  redis.call('HDEL', KEYS[4], 'failing_since')
else
  failures = redis.call('HINCRBY', KEYS[4], 'failures', 1)
  redis.call('HSETNX', KEYS[4], 'failing_since', ARGV[6])
end
local since = redis.call('HGET', KEYS[4], 'failing_since') or ''
local seq = redis.call('INCR', KEYS[6])
redis.call('LPUSH', KEYS[5], seq .. ':' .. ARGV[7])
redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[8]) - 1)
return {1, failures, since}
