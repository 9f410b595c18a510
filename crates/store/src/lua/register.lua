-- Registers (or re-registers) a node under a new epoch, above every epoch
-- handed out before, and above the caller's clock in ms so that a store
-- that lost its counter still never repeats an epoch of a live claim.
-- KEYS: node hash, alive key, nodes set, epoch counter.
-- ARGV: node id, description (JSON), ttl ms, now ms.
local epoch = redis.call('INCR', KEYS[4])
if epoch < tonumber(ARGV[4]) then
  redis.call('SET', KEYS[4], ARGV[4])
  epoch = tonumber(ARGV[4])
end
epoch = string.format('%d', epoch)
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'info', ARGV[2], 'used', '0', 'draining', '0', 'epoch', epoch, 'ttl', ARGV[3])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
redis.call('SADD', KEYS[3], ARGV[1])
return epoch
