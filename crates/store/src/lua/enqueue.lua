-- Puts a request at the back of the queue, replacing any record of its id.
-- Mirrors gridiron_domain::request::step(Event::Enqueue); the queue bound
-- is the queue's own rule.
-- KEYS: queue, seq, request, the hub's open requests.
-- ARGV: rid, max queue, work channel, then field/value pairs of the record.
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return -1 end
local seq = redis.call('INCR', KEYS[2])
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'state', 'waiting', 'seq', seq, unpack(ARGV, 4))
redis.call('ZADD', KEYS[1], seq, ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return seq
