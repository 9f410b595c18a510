-- Forgets a session's route and pool place. Which pool set to touch depends
-- on the session's record, so the caller reads it first and passes it: if
-- it changed meanwhile, nothing is done and 'retry' is returned.
-- KEYS: node sessions, route, pool running set of the record read.
-- ARGV: sid, the record read ('' if none), place to free ('' if none).
local v = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if v ~= ARGV[2] then return 'retry' end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
if ARGV[3] ~= '' then redis.call('SREM', KEYS[3], ARGV[3]) end
return 'ok'
