-- Appends an event to the grid's event stream. An event about a session
-- also has its id listed under the session (KEYS[2]), so the session's
-- timeline is read without scanning the stream.
-- KEYS: stream [, session list]
-- ARGV: events kept, ids kept per session, session list TTL (s), field, value, ...
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 4))
if #KEYS > 1 then
  redis.call('RPUSH', KEYS[2], id)
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
return id
