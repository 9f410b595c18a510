-- Puts a request in the queue, replacing any record of its id. Mirrors
-- gridiron_domain::request::step(Event::Enqueue); the queue bound is the
-- queue's own rule. Its score is fair between API keys, as
-- gridiron_store::cluster::fair_round explains: its round is
-- max(highest round claimed, its key's last round + 1), its score
-- round * 2^20 + seq mod 2^20.
-- KEYS: queue, seq, request, the hub's open requests, last round per key,
--       highest round claimed.
-- ARGV: rid, max queue, work channel, owner, then field/value pairs of the record.
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return -1 end
redis.call('ZREM', KEYS[1], ARGV[1])
local seq = redis.call('INCR', KEYS[2])
local round = tonumber(redis.call('GET', KEYS[6]) or '0') or 0
local last = tonumber(redis.call('HGET', KEYS[5], ARGV[4]) or '')
if last then round = math.max(round, last + 1) end
redis.call('HSET', KEYS[5], ARGV[4], string.format('%d', round))
local score = string.format('%d', round * 1048576 + seq % 1048576)
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'state', 'waiting', 'seq', seq, 'score', score, unpack(ARGV, 5))
redis.call('ZADD', KEYS[1], score, ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return seq
