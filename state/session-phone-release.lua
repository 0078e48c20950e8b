-- Releases a phone only while the session still owns it (sessions.ts releasePhone): a session that lost the phone
-- to another never deletes the new owner's claim.
-- KEYS: [1] phone:session:<phone>
-- ARGV: [1] sessionId
-- Returns 1 when the claim was deleted, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
