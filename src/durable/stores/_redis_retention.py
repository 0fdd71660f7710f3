"""The Lua scripts of the Redis store's retention: deleting finished runs.

Each script runs atomically on the server, so the status test and the
deletion cannot be separated by a claim. A run's keys are its hash, its
steps and its signals; its id is also a member of the app's run index and of
one status index, both sorted sets scored by creation time. Sorted-set
members do not expire with the keys they name (``ttl=``): the scripts here
drop the members of expired runs they meet, as listing does.
"""

from __future__ import annotations

from typing import Final

# A prune script call reads at most this many index members: Redis runs
# nothing else meanwhile, so each call must stay short.
SCAN_PAGE: Final = 500

# The listing indexes of one run's workflow and queue, from the app's key
# stems (head, tail) and the run's hash: members to drop with the run.
_UNLIST = """
local function unlist(run, id, head, tail)
    local r = redis.call('HMGET', run, 'workflow', 'queue')
    if r[1] then redis.call('ZREM', head .. 'wlist' .. tail .. r[1], id) end
    if r[2] then redis.call('ZREM', head .. 'qlist' .. tail .. r[2], id) end
end
"""

# KEYS: run, steps, signals, this call's log (Keys.deletion), then the app's
#       run index, id set and status indexes.
# ARGV: run_id, the app's key stems. Returns nil when absent, {0, status}
# when unfinished, else {1, the run's fields before the delete}. The log
# keeps those fields a minute: a retry of a call whose first attempt ran
# answers as that attempt did.
DELETE_RUN: Final = """
local earlier = redis.call('HGETALL', KEYS[4])
if #earlier > 0 then return {1, earlier} end
local flat = redis.call('HGETALL', KEYS[1])
if #flat == 0 then return nil end
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'completed' and status ~= 'failed' and status ~= 'cancelled' then
    return {0, status}
end
unlist(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
for i = 5, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
redis.call('HSET', KEYS[4], unpack(flat))
redis.call('PEXPIRE', KEYS[4], 60000)
return {1, flat}
"""

# KEYS: the status index to scan, then the app's run index, id set and status
#       indexes.
# ARGV: cutoff, how many to delete at most, offset (members skipped so far),
#       dry run ('1': count only), the status wanted, the app's key stems.
# Scans at most SCAN_PAGE members created before the cutoff (a run finishes
# after it was created), from ``offset``; deletes (or counts) those of the
# wanted status that finished before the cutoff. Returns {deleted, skipped,
# exhausted}: ``skipped`` members were kept, so the next call starts at
# offset + skipped.
PRUNE: Final = f"""
local cutoff, wanted, offset = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local dry, status, head, tail = ARGV[4] == '1', ARGV[5], ARGV[6], ARGV[7]
-- A little more than wanted: some members may be kept (they finished later).
local page = math.min({SCAN_PAGE}, wanted + {SCAN_PAGE // 10})
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', offset, page)
local deleted, skipped, stale = 0, 0, {{}}
for _, id in ipairs(ids) do
    if deleted >= wanted then break end
    local run = head .. 'run' .. tail .. id
    local r = redis.call('HMGET', run, 'status', 'updated')
    if not r[1] then
        stale[#stale + 1] = id  -- expired by ttl: only its index members remain
    elseif r[1] == status and tonumber(r[2]) < cutoff then
        deleted = deleted + 1
        if not dry then
            unlist(run, id, head, tail)
            redis.call('DEL', run, head .. 'steps' .. tail .. id, head .. 'signals' .. tail .. id)
            for i = 2, #KEYS do redis.call('ZREM', KEYS[i], id) end
        end
    else
        skipped = skipped + 1
    end
end
if dry then
    skipped = skipped + deleted
end
for _, id in ipairs(stale) do
    for i = 2, #KEYS do redis.call('ZREM', KEYS[i], id) end
end
local exhausted = #ids < page
return {{deleted, skipped, exhausted and 1 or 0}}
"""

# Both scripts call unlist().
SCRIPTS: Final = (("delete_run", _UNLIST + DELETE_RUN), ("prune", _UNLIST + PRUNE))
