-- Forgets a session's route, pool place and key place. Which sets to touch
-- depends on the session's record, so the caller reads it first and passes
-- it: if it changed meanwhile, nothing is done and 'retry' is returned.
-- KEYS: node sessions, route, pool running set and key running set of the
--       record read.
-- ARGV: sid, the record read ('' if none), pool place to free ('' if none),
--       key place to free ('' if none).
local v = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if v ~= ARGV[2] then return 'retry' end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
if ARGV[3] ~= '' then redis.call('SREM', KEYS[3], ARGV[3]) end
if ARGV[4] ~= '' then redis.call('SREM', KEYS[4], ARGV[4]) end
return 'ok'
