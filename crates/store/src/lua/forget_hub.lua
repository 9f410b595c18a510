-- Forgets a hub whose heartbeat expired: its clients were connected to it.
-- Requests waiting, starting or answered are withdrawn (mirrors
-- gridiron_domain::request::step(Event::HubLost)); answers it never
-- delivered are returned, so their sessions can be ended.
-- The request keys depend on data, so the caller reads the hub's open
-- requests first and passes them; if they changed meanwhile, nothing is done
-- and 'retry' is returned.
-- KEYS: hubs set, alive, queue, the hub's open requests, then each request.
-- ARGV: hub, ttl ms, count, then each rid.
-- Returns {'alive'}, {'retry'} or {'done', answer...}.
if redis.call('EXISTS', KEYS[2]) == 1 then return {'alive'} end
local n = tonumber(ARGV[3])
if redis.call('SCARD', KEYS[4]) ~= n then return {'retry'} end
for i = 1, n do
  if redis.call('SISMEMBER', KEYS[4], ARGV[3 + i]) == 0 then return {'retry'} end
end
local out = {'done'}
for i = 1, n do
  local rid, rk = ARGV[3 + i], KEYS[4 + i]
  local st = redis.call('HGET', rk, 'state')
  if st == 'waiting' or st == 'claimed' or st == 'done' then
    if st == 'done' then out[#out + 1] = redis.call('HGET', rk, 'answer') or '' end
    redis.call('ZREM', KEYS[3], rid)
    redis.call('HSET', rk, 'state', 'cancelled', 'reason', 'client_gone')
    redis.call('PEXPIRE', rk, ARGV[2])
  end
end
redis.call('DEL', KEYS[4])
redis.call('SREM', KEYS[1], ARGV[1])
return out
