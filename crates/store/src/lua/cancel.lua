-- Withdraws a request its hub gives up on. Mirrors
-- gridiron_domain::request::step(Event::Cancel): a soft cancel leaves a
-- request a node is starting alone; an answered one is taken instead.
-- KEYS: request, queue. ARGV: rid, reason, ttl ms, soft ('1').
-- Returns {'missing'|'removed'|'starting'|'done'|'finished', answer}.
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {'missing', ''} end
if st == 'waiting' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'reason', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'removed', ''}
end
if st == 'claimed' then
  if ARGV[4] == '1' then return {'starting', ''} end
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'reason', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'starting', ''}
end
if st == 'done' then
  -- The hub takes the answer (to deliver it, or to end its session).
  redis.call('HSET', KEYS[1], 'state', 'delivered')
  return {'done', redis.call('HGET', KEYS[1], 'answer') or ''}
end
return {'finished', ''}
