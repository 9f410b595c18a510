-- Takes a waiting request for a node, under the node's current registration
-- epoch ('0' for a node the store does not know). Mirrors
-- gridiron_domain::request::step(Event::Claim): refused unless waiting, if
-- the node is draining or was declared lost, if the pool is full, or if the
-- request's API key already runs as many sessions as it may.
-- KEYS: request, queue, node claims, pool running set, node hash,
--       key running set, highest round claimed (see enqueue.lua).
-- ARGV: rid, node, pool max, key max.
-- Returns {1, epoch} claimed, {0, ''} gone, {-1, ''} pool full, {-2, ''} key full.
if redis.call('HGET', KEYS[1], 'state') ~= 'waiting' then return {0, ''} end
local node = redis.call('HMGET', KEYS[5], 'draining', 'lost', 'epoch')
if node[1] == '1' or node[2] == '1' then return {0, ''} end
local max = tonumber(ARGV[3])
if max > 0 and redis.call('SCARD', KEYS[4]) >= max then return {-1, ''} end
local kmax = tonumber(ARGV[4])
if kmax > 0 and redis.call('SCARD', KEYS[6]) >= kmax then return {-2, ''} end
local epoch = node[3] or '0'
local score = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1]) or '')
if score then
  local round = math.floor(score / 1048576)
  if round > (tonumber(redis.call('GET', KEYS[7]) or '0') or 0) then
    redis.call('SET', KEYS[7], string.format('%d', round))
  end
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'claimed', 'node', ARGV[2], 'epoch', epoch)
redis.call('SADD', KEYS[3], ARGV[1])
local place = ARGV[1] .. '@' .. ARGV[2]
if max > 0 then redis.call('SADD', KEYS[4], place) end
if kmax > 0 then redis.call('SADD', KEYS[6], place) end
return {1, epoch}
