-- Takes a waiting request for a node, under the node's current registration
-- epoch ('0' for a node the store does not know). Mirrors
-- gridiron_domain::request::step(Event::Claim): refused unless waiting, if
-- the node is draining or was declared lost, or if the pool is full.
-- KEYS: request, queue, node claims, pool running set, node hash.
-- ARGV: rid, node, pool max.
-- Returns {1, epoch} claimed, {0, ''} gone, {-1, ''} pool full.
if redis.call('HGET', KEYS[1], 'state') ~= 'waiting' then return {0, ''} end
local node = redis.call('HMGET', KEYS[5], 'draining', 'lost', 'epoch')
if node[1] == '1' or node[2] == '1' then return {0, ''} end
local max = tonumber(ARGV[3])
if max > 0 and redis.call('SCARD', KEYS[4]) >= max then return {-1, ''} end
local epoch = node[3] or '0'
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'claimed', 'node', ARGV[2], 'epoch', epoch)
redis.call('SADD', KEYS[3], ARGV[1])
if max > 0 then redis.call('SADD', KEYS[4], ARGV[1] .. '@' .. ARGV[2]) end
return {1, epoch}
