-- Disables or deletes a subscription, dropping its pending deliveries.
-- KEYS[1] its hash, KEYS[2] its pending deliveries, KEYS[3] the due
-- deliveries, KEYS[4] its log, KEYS[5] its log's counter, KEYS[6] the index
-- of subscriptions, KEYS[7..] the hashes of its pending deliveries.
-- ARGV[1] 'disable' or 'delete', ARGV[2] its id, ARGV[3] the reason,
-- ARGV[4] now (ms), ARGV[5] the log line (JSON), ARGV[6] lines kept,
-- ARGV[7] how long a finished delivery is remembered (ms), ARGV[8..] the
-- ids of the deliveries in KEYS[7..].
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local delete = ARGV[1] == 'delete'
if not delete and redis.call('HEXISTS', KEYS[1], 'disabled') == 1 then return 0 end
for i = 8, #ARGV do
  redis.call('ZREM', KEYS[3], ARGV[i])
  redis.call('SREM', KEYS[2], ARGV[i])
  if delete then
    redis.call('DEL', KEYS[i - 1])
  else
    redis.call('HSET', KEYS[i - 1], 'state', 'done')
    redis.call('HDEL', KEYS[i - 1], 'token')
    redis.call('PEXPIRE', KEYS[i - 1], ARGV[7])
  end
end
if delete then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[4], KEYS[5])
  redis.call('ZREM', KEYS[6], ARGV[2])
  return 1
end
redis.call('HSET', KEYS[1], 'disabled', ARGV[3], 'disabled_at', ARGV[4])
local seq = redis.call('INCR', KEYS[5])
redis.call('LPUSH', KEYS[4], seq .. ':' .. ARGV[5])
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[6]) - 1)
return 1
