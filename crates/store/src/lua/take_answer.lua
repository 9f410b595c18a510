-- Hands an answer to its hub exactly once. Mirrors
-- gridiron_domain::request::step(Event::Take).
-- KEYS: request, the hub's open requests. ARGV: rid.
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[1], 'state') ~= 'done' then return false end
redis.call('HSET', KEYS[1], 'state', 'delivered')
return redis.call('HGET', KEYS[1], 'answer')
