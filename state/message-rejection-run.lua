-- A run of WhatsApp refusals (463/479) on one session (messages.ts recordSendOutcome). A refusal counts up
-- `rejectRun`; an accepted send resets it. At `run` refusals in a row the session is slowed (`burstUntil`, like a
-- burst), `rejectAlert` is set for the dispatcher to raise, and the run restarts.
-- KEYS: [1] dispatch:state:<session>
-- ARGV: [1] rejected 1|0  [2] run (refusals in a row that trigger)  [3] pauseMs
-- Returns the run length that triggered, or 0.
local stateKey = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] ~= '1' then
  redis.call('HSET', stateKey, 'rejectRun', 0)
  return 0
end
local n = redis.call('HINCRBY', stateKey, 'rejectRun', 1)
if n < tonumber(ARGV[2]) then return 0 end
redis.call('HSET', stateKey, 'rejectRun', 0, 'burstUntil', now + tonumber(ARGV[3]), 'rejectAlert', n)
return n
