-- Makes one delivery (an event for a subscription) unless it was made before
-- or the subscription is gone or disabled.
-- KEYS[1] the subscription's hash, KEYS[2] the delivery's hash, KEYS[3] the
-- due deliveries (score: due time), KEYS[4] the subscription's pending deliveries.
-- ARGV[1] delivery id, ARGV[2] subscription id, ARGV[3] event id,
-- ARGV[4] event type, ARGV[5] body, ARGV[6] now (ms).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'disabled') == 1 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[2], 'webhook', ARGV[2], 'event_id', ARGV[3], 'event_type', ARGV[4],
  'body', ARGV[5], 'attempts', 0, 'state', 'pending')
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
return 1
