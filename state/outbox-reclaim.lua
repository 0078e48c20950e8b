-- Moves expired leases back to the head of a session's worker outbox, oldest claim first (outbox.ts
-- reclaimExpired; outbox-claim.lua does the same before it claims).
-- KEYS: [1] session:outbox:<session> (queue)  [2] its :inflight
-- ARGV: none
-- Returns how many leases expired.
local queue, inflight = KEYS[1], KEYS[2]
--- @include "outbox-shared.lua"
return requeueExpired(queue, inflight, nowMs())
