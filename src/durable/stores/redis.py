"""RedisStore: the Store contract on Redis, through redis.asyncio.

Each write is one Lua script run atomically on the server, so it costs one
round trip; lease times come from the Redis server clock (``TIME``). Records
of an unfinished run never expire; ``finished_ttl`` optionally expires the
records of finished runs.

Redis keeps data in memory: configure persistence (``appendonly yes`` with
``appendfsync always`` or ``everysec``) for the durability you need. Install
the driver with ``pip install python-durable[redis]``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import uuid
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from durable._fastpaths import asyncio as asyncio_fastpaths
from durable._fastpaths import redis as redis_fastpaths
from durable.errors import ConfigurationError, LeaseLostError, StoreError, StoreUnavailableError
from durable.stores import _redis_retention
from durable.stores._checks import (
    check_claim,
    check_enqueue,
    check_json,
    check_names,
    check_signal,
    check_step,
)
from durable.stores._listing import ListQuery, listing_key, merge_counts, prefix_end
from durable.stores._loops import LoopShutdownHook, close_on_loop
from durable.stores._retention import check_prune, not_finished
from durable.stores._wake import WorkWaiters, signal_topic, slot_topic
from durable.stores.base import (
    RUN_STATUSES,
    Claim,
    FinalStatus,
    LeaseState,
    NewRun,
    QueueCounts,
    QueueLimits,
    RunRecord,
    RunStatus,
    SavedStep,
    StepRecord,
    Store,
    check_signal_keys,
)

__all__ = ["RedisStore", "from_url"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class _Keys:
    """Every key the store uses, built in this one place.

    ``{prefix}:run:{len(app)}:{app}:{run_id}`` and friends: the length makes the
    key unambiguous whatever characters app names and run ids contain.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def _scoped(self, kind: str, app: str, run_id: str) -> str:
        return f"{self.prefix}:{kind}:{len(app)}:{app}:{run_id}"

    def run(self, app: str, run_id: str) -> str:
        """Hash of the run record's fields."""
        return self._scoped("run", app, run_id)

    def steps(self, app: str, run_id: str) -> str:
        """Hash of step id -> encoded step."""
        return self._scoped("steps", app, run_id)

    def signals(self, app: str, run_id: str) -> str:
        """Hash of signal payloads, per-name counters and sender nonces."""
        return self._scoped("signals", app, run_id)

    def index(self, app: str) -> str:
        """Sorted set of the app's run ids scored by creation time."""
        return f"{self.prefix}:index:{app}"

    def status(self, app: str, status: str) -> str:
        """Sorted set of the app's run ids in ``status``, scored by creation time."""
        return f"{self.prefix}:status:{len(app)}:{app}:{status}"

    def statuses(self, app: str) -> list[str]:
        """Every :meth:`status` key of the app, in ``RUN_STATUSES`` order (as scripts expect)."""
        return [self.status(app, status) for status in RUN_STATUSES]

    def queue(self, kind: str, app: str, queue: str) -> str:
        """A key of one queue of the app (see ``_QUEUE_KINDS``)."""
        return self._scoped(kind, app, queue)

    def queues(self, app: str, queue: str) -> list[str]:
        """Every key of one queue, in ``_QUEUE_KINDS`` order (as the claim script expects)."""
        return [self.queue(kind, app, queue) for kind in _QUEUE_KINDS]

    def by_workflow(self, app: str, workflow: str) -> str:
        """Sorted set of the ids of the app's runs of ``workflow``, scored by creation time."""
        return self._scoped("wlist", app, workflow)

    def by_queue(self, app: str, queue: str) -> str:
        """Sorted set of the ids of the app's runs enqueued in ``queue``, by creation time."""
        return self._scoped("qlist", app, queue)

    def ids(self, app: str) -> str:
        """Sorted set of the app's run ids, all scored 0: ZRANGEBYLEX finds an id prefix."""
        return f"{self.prefix}:ids:{len(app)}:{app}"

    def queue_names(self, app: str) -> str:
        """Set of the names of the app's queues that ever held a run (for queue_stats)."""
        return f"{self.prefix}:queues:{len(app)}:{app}"

    def work_channel(self) -> str:
        """The pub/sub channel where enqueues and queued runs' finishes publish their app."""
        return f"{self.prefix}:work"

    def stems(self, app: str) -> tuple[str, str]:
        """``(head, tail)`` such that ``head + kind + tail + name`` is a key of the app.

        Scripts build the keys of the runs they pop from a queue, and of the
        queue a run belongs to, from these: ``_scoped`` spelled out in Lua.
        Those keys are not declared to the script, which a single server (the
        only kind this store supports: its scripts span hash slots) allows.
        """
        return f"{self.prefix}:", f":{len(app)}:{app}:"

    def queue_claim(self, app: str, nonce: str) -> str:
        """List of the run ids one ``claim_queued`` call started, kept a while for its retry."""
        return self._scoped("qclaim", app, nonce)

    def deletion(self, app: str, nonce: str) -> str:
        """Hash of the run one ``delete_run`` call deleted, kept a while for its retry."""
        return self._scoped("deleted", app, nonce)

    def creation(self, app: str, run_id: str) -> list[str]:
        """The keys of the scripts that create runs (claim, enqueue), in their order."""
        return [
            self.run(app, run_id),
            self.steps(app, run_id),
            self.signals(app, run_id),
            self.index(app),
            *self.statuses(app),
            self.layout(app),
        ]

    def layout(self, app: str) -> str:
        """The layout version the app's keys are complete in (see ``_LAYOUT_VERSION``)."""
        return f"{self.prefix}:layout:{len(app)}:{app}"

    def pattern(self) -> str:
        """A SCAN pattern matching every key of this prefix."""
        return f"{_escape_glob(self.prefix)}:*"


def _escape_glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


# The keys of one queue of an app, by kind:
#   qready:   its queued runs that may start now, scored by priority. A member
#             is the run's enqueue sequence number in 16 hex digits, then its
#             id: equal priorities sort in enqueue order.
#   qdelayed: the same members for runs whose not_before is still ahead,
#             scored by not_before; claim_queued moves the due ones to qready
#             (at most 1000 per queue and call, the earliest due first).
#   qrunning: set of the ids of its runs with status running.
#   qstarts:  "run_id:token" of its recent starts, scored by start time (for
#             rate limits; trimmed to the window by claim_queued).
#   qseq:     the enqueue sequence counter.
#   qparked:  ids of its parked (waiting) runs that have a wake time, scored
#             by it; claim_queued wakes the due ones before starting others.
_QUEUE_KINDS = ("qready", "qdelayed", "qrunning", "qstarts", "qseq", "qparked")


def _lua_list(names: Sequence[str]) -> str:
    return "{" + ", ".join(f"'{name}'" for name in names) + "}"


# Lua numbers become integers in replies and lose digits when passed to
# commands as numbers, so times travel as "%.17g" strings: exact for doubles.
_PRELUDE = (
    """
local function now()
    local t = redis.call('TIME')
    return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function fmt(x) return string.format('%.17g', x) end
local function owned(run, token)
    local r = redis.call('HMGET', run, 'status', 'token', 'cancel')
    return r[1] == 'running' and r[2] == token, r[3]
end
-- The status indexes of a run's app are KEYS[first .. first + NSTATUS - 1],
-- in RUN_STATUSES order; a run is in exactly the one of its status.
local STATUSES = """
    + _lua_list(RUN_STATUSES)
    + """
local NSTATUS = #STATUSES
local function reindex(first, id, created, status)
    for i, name in ipairs(STATUSES) do
        local key = KEYS[first + i - 1]
        if name == status then
            redis.call('ZADD', key, created, id)
        else
            redis.call('ZREM', key, id)
        end
    end
end
-- The keys of a queue in _QUEUE_KINDS order, built from the app's key stems
-- (see _Keys.stems): the queue of a run is known only once its hash is read.
local QKINDS = """
    + _lua_list(_QUEUE_KINDS)
    + """
local function qkeys(head, tail, queue)
    local keys = {}
    for i, kind in ipairs(QKINDS) do keys[i] = head .. kind .. tail .. queue end
    return keys
end
-- A queued run of the queue with keys q leaves its waiting sets and starts.
local function started(q, id, member, token, t)
    if member then
        redis.call('ZREM', q[1], member)
        redis.call('ZREM', q[2], member)
    end
    redis.call('SADD', q[3], id)
    redis.call('ZADD', q[4], fmt(t), id .. ':' .. token)
end
-- A failed run, or a cancelled one continued, runs again: its failed steps
-- go, its error and cancellation are cleared, and it must no longer expire
-- (a finished run may carry finished_ttl; a live one never expires).
local function restart(run, steps, signals)
    local all = redis.call('HGETALL', steps)
    for i = 1, #all, 2 do
        if string.sub(all[i + 1], 1, 1) == 'f' then redis.call('HDEL', steps, all[i]) end
    end
    redis.call('HDEL', run, 'error')
    redis.call('HSET', run, 'cancel', '0')
    redis.call('PERSIST', run)
    redis.call('PERSIST', steps)
    redis.call('PERSIST', signals)
end
"""
)

# KEYS: run, steps, signals, index, the app's status indexes, layout, the
#       workflow's run list, the app's ids
# ARGV: run_id, workflow, inputs, has_parent, parent, owner, ttl, has_steal,
#       steal_from, resume, nonce, layout version, the app's two key stems,
#       has_trace, trace_context
_CLAIM = (
    _PRELUDE
    + """
local run, steps, signals = KEYS[1], KEYS[2], KEYS[3]
local t = now()
local lease = fmt(t + tonumber(ARGV[7]))
if redis.call('EXISTS', run) == 0 then
    redis.call('HSET', run, 'workflow', ARGV[2], 'status', 'running', 'inputs', ARGV[3],
        'owner', ARGV[6], 'token', '1', 'lease', lease, 'attempts', '1', 'cancel', '0',
        'created', fmt(t), 'updated', fmt(t), 'started', fmt(t), 'claim_nonce', ARGV[11])
    if ARGV[4] == '1' then redis.call('HSET', run, 'parent', ARGV[5]) end
    if ARGV[15] == '1' then redis.call('HSET', run, 'trace', ARGV[16]) end
    -- The app's first run: its indexes are complete in this layout from the start.
    if redis.call('EXISTS', KEYS[4]) == 0 then redis.call('SET', KEYS[5 + NSTATUS], ARGV[12]) end
    redis.call('DEL', steps)
    redis.call('PERSIST', signals)
    redis.call('ZADD', KEYS[4], fmt(t), ARGV[1])
    redis.call('ZADD', KEYS[6 + NSTATUS], fmt(t), ARGV[1])
    redis.call('ZADD', KEYS[7 + NSTATUS], 0, ARGV[1])
    reindex(5, ARGV[1], fmt(t), 'running')
    return {1, redis.call('HGETALL', run), {}}
end
local r = {}
local flat = redis.call('HGETALL', run)
for i = 1, #flat, 2 do r[flat[i]] = flat[i + 1] end
local acquired = false
if r.claim_nonce == ARGV[11] and r.status == 'running' then
    -- A retry of a call whose first attempt ran: the run is already ours.
    redis.call('HSET', run, 'lease', lease, 'updated', fmt(t))
    acquired = true
elseif r.workflow == ARGV[2] and r.inputs == ARGV[3] then
    -- Another workflow's run, or this one called with other inputs: untouched.
    local start = r.status == 'queued'
    local again = r.status == 'failed' or (r.status == 'cancelled' and ARGV[10] == '1')
    local takeover = r.status == 'running' and (
        (r.lease ~= nil and tonumber(r.lease) <= t)
        or (ARGV[8] == '1' and r.owner == ARGV[9]))
    if again then restart(run, steps, signals) end
    if start or again or takeover then
        local token = redis.call('HINCRBY', run, 'token', 1)
        redis.call('HINCRBY', run, 'attempts', 1)
        redis.call('HSET', run, 'status', 'running', 'owner', ARGV[6], 'lease', lease,
            'updated', fmt(t), 'claim_nonce', ARGV[11])
        redis.call('HDEL', run, 'finish_nonce')
        if start then redis.call('HSET', run, 'started', fmt(t)) end
        if r.queue and (start or again) then
            -- It runs now: one more running run of its queue.
            local q = qkeys(ARGV[13], ARGV[14], r.queue)
            if start then
                started(q, ARGV[1], r.qmember, token, t)
            else
                redis.call('SADD', q[3], ARGV[1])
            end
        end
        reindex(5, ARGV[1], r.created, 'running')
        acquired = true
    end
end
return {acquired and 1 or 0, redis.call('HGETALL', run), redis.call('HGETALL', steps)}
"""
)

# KEYS: run, steps. ARGV: token, step_id, encoded step.
# Returns nil when fenced, else {cancel, 1} when stored or {cancel, 0, existing}.
_SAVE_STEP = (
    _PRELUDE
    + """
local ok, cancel = owned(KEYS[1], ARGV[1])
if not ok then return nil end
if redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3]) == 1 then return {cancel, 1} end
return {cancel, 0, redis.call('HGET', KEYS[2], ARGV[2])}
"""
)

# KEYS: run. ARGV: token, ttl. Returns nil when lost, else the cancel flag.
_RENEW = (
    _PRELUDE
    + """
local ok, cancel = owned(KEYS[1], ARGV[1])
if not ok then return nil end
local t = now()
redis.call('HSET', KEYS[1], 'lease', fmt(t + tonumber(ARGV[2])), 'updated', fmt(t))
return cancel
"""
)

# KEYS: runs. ARGV: ttl, then the token of each run.
# Returns per run: 0 when lost, 1 when renewed, 2 when renewed with a cancel request.
_RENEW_MANY = (
    _PRELUDE
    + """
local t = now()
local lease, updated = fmt(t + tonumber(ARGV[1])), fmt(t)
local states = {}
for i, run in ipairs(KEYS) do
    local ok, cancel = owned(run, ARGV[i + 1])
    if ok then
        redis.call('HSET', run, 'lease', lease, 'updated', updated)
        states[i] = cancel == '1' and 2 or 1
    else
        states[i] = 0
    end
end
return states
"""
)

# KEYS: run. ARGV: token.
_RELEASE = (
    _PRELUDE
    + """
if not owned(KEYS[1], ARGV[1]) then return 0 end
local t = fmt(now())
redis.call('HDEL', KEYS[1], 'owner')
redis.call('HSET', KEYS[1], 'lease', t, 'updated', t)
return 1
"""
)

# KEYS: run, steps, signals, then the app's status indexes.
# ARGV: token, status, has_output, output, has_error, error, nonce, ttl_ms ('' = keep),
#       run_id, the app's key stems, the work channel, the app.
# A run of a queue frees a slot of it: the queue's slot topic (_wake.slot_topic)
# is published on the work channel.
_FINISH = (
    _PRELUDE
    + """
local run = KEYS[1]
if not owned(run, ARGV[1]) then
    -- A retry of a call whose first attempt committed returns the same answer.
    local r = redis.call('HMGET', run, 'token', 'finish_nonce')
    if r[1] == ARGV[1] and r[2] == ARGV[7] then return redis.call('HGETALL', run) end
    return nil
end
redis.call('HSET', run, 'status', ARGV[2], 'updated', fmt(now()), 'finish_nonce', ARGV[7])
redis.call('HDEL', run, 'owner', 'lease', 'output', 'error')
if ARGV[3] == '1' then redis.call('HSET', run, 'output', ARGV[4]) end
if ARGV[5] == '1' then redis.call('HSET', run, 'error', ARGV[6]) end
reindex(4, ARGV[9], redis.call('HGET', run, 'created'), ARGV[2])
local queue = redis.call('HGET', run, 'queue')
if queue then
    redis.call('SREM', qkeys(ARGV[10], ARGV[11], queue)[3], ARGV[9])
    redis.call('PUBLISH', ARGV[12], ARGV[13] .. '\\31slot\\31' .. queue)
end
if ARGV[8] ~= '' then
    for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[8]) end
end
return redis.call('HGETALL', run)
"""
)

# KEYS: run, then the app's status indexes.
# ARGV: run_id, the app's key stems, ttl_ms ('' = keep).
_CANCEL = (
    _PRELUDE
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return nil end
if status == 'running' then
    redis.call('HSET', KEYS[1], 'cancel', '1', 'updated', fmt(now()))
elseif status == 'failed' or status == 'queued' or status == 'waiting' then
    redis.call('HSET', KEYS[1], 'status', 'cancelled', 'updated', fmt(now()))
    local r = redis.call('HMGET', KEYS[1], 'queue', 'qmember')
    if status == 'queued' and r[1] then
        -- Nobody will start it: out of its queue.
        local q = qkeys(ARGV[2], ARGV[3], r[1])
        redis.call('ZREM', q[1], r[2])
        redis.call('ZREM', q[2], r[2])
    elseif status == 'waiting' and r[1] then
        redis.call('ZREM', qkeys(ARGV[2], ARGV[3], r[1])[6], ARGV[1])
    end
    reindex(2, ARGV[1], redis.call('HGET', KEYS[1], 'created'), 'cancelled')
    if ARGV[4] and ARGV[4] ~= '' then
        -- Finished now: it expires like a run finish_run ended.
        redis.call('PEXPIRE', KEYS[1], ARGV[4])
        redis.call('PEXPIRE', ARGV[2] .. 'steps' .. ARGV[3] .. ARGV[1], ARGV[4])
        redis.call('PEXPIRE', ARGV[2] .. 'signals' .. ARGV[3] .. ARGV[1], ARGV[4])
    end
end
return redis.call('HGETALL', KEYS[1])
"""
)

# KEYS: signals, run. ARGV: name, payload, nonce, run_id, the app's key stems,
#       the work channel, the app, the app's signal topic.
# The nonce makes a retried call return the index of its first attempt. A
# parked run becomes due now, and the app is published on the work channel;
# the signal topic is published for waits in progress.
_SEND_SIGNAL = (
    _PRELUDE
    + """
local seen = redis.call('HGET', KEYS[1], 'k:' .. ARGV[3])
if seen then return tonumber(seen) end
local idx = redis.call('HINCRBY', KEYS[1], 'n:' .. ARGV[1], 1) - 1
redis.call('HSET', KEYS[1], 'v:' .. idx .. ':' .. ARGV[1], ARGV[2], 'k:' .. ARGV[3], idx)
local ttl = redis.call('PTTL', KEYS[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
local r = redis.call('HMGET', KEYS[2], 'status', 'queue')
if r[1] == 'waiting' and r[2] then
    local t = fmt(now())
    redis.call('HSET', KEYS[2], 'not_before', t, 'updated', t)
    redis.call('ZADD', qkeys(ARGV[5], ARGV[6], r[2])[6], t, ARGV[4])
    redis.call('PUBLISH', ARGV[7], ARGV[8])
end
redis.call('PUBLISH', ARGV[7], ARGV[9])
return idx
"""
)

# KEYS: run, signals, then the app's status indexes, then its queue names.
# ARGV: token, run_id, queue, wake ('' = none), has_signal, signal name, signal
#       index, the app's key stems, the work channel, the app.
# Returns 1 when parked (or parked already by this token), 0 when not owned.
_PARK = (
    _PRELUDE
    + """
local run = KEYS[1]
local r = redis.call('HMGET', run, 'status', 'token', 'queue', 'created')
if r[2] ~= ARGV[1] then return 0 end
if r[1] == 'waiting' then return 1 end
if r[1] ~= 'running' then return 0 end
local t = now()
local queue = r[3] or ARGV[3]
local wake = ARGV[4]
if ARGV[5] == '1' and redis.call('HEXISTS', KEYS[2], 'v:' .. ARGV[7] .. ':' .. ARGV[6]) == 1 then
    -- The signal it waits for is stored already: due at once.
    wake = fmt(t)
end
redis.call('HSET', run, 'status', 'waiting', 'queue', queue, 'updated', fmt(t))
redis.call('HDEL', run, 'owner', 'lease', 'not_before')
local q = qkeys(ARGV[8], ARGV[9], queue)
redis.call('SREM', q[3], ARGV[2])
if not r[3] then
    -- An adopted run had no queue: it is listed under the one it parks in now.
    redis.call('ZADD', ARGV[8] .. 'qlist' .. ARGV[9] .. queue, r[4], ARGV[2])
    redis.call('SADD', KEYS[3 + NSTATUS], queue)
end
if wake ~= '' then
    redis.call('HSET', run, 'not_before', wake)
    redis.call('ZADD', q[6], wake, ARGV[2])
end
reindex(3, ARGV[2], r[4], 'waiting')
redis.call('PUBLISH', ARGV[10], ARGV[11])
return 1
"""
)

# KEYS and ARGV as _SEND_SIGNAL's. Returns 0 (the index) when stored, -1 when
# a signal of that name was sent before; wakes a parked run like _SEND_SIGNAL.
_SEND_SIGNAL_ONCE = (
    _PRELUDE
    + """
local seen = redis.call('HGET', KEYS[1], 'k:' .. ARGV[3])
if seen then return tonumber(seen) end
if redis.call('HEXISTS', KEYS[1], 'n:' .. ARGV[1]) == 1 then return -1 end
redis.call('HSET', KEYS[1], 'n:' .. ARGV[1], 1, 'v:0:' .. ARGV[1], ARGV[2], 'k:' .. ARGV[3], 0)
local ttl = redis.call('PTTL', KEYS[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
local r = redis.call('HMGET', KEYS[2], 'status', 'queue')
if r[1] == 'waiting' and r[2] then
    local t = fmt(now())
    redis.call('HSET', KEYS[2], 'not_before', t, 'updated', t)
    redis.call('ZADD', qkeys(ARGV[5], ARGV[6], r[2])[6], t, ARGV[4])
    redis.call('PUBLISH', ARGV[7], ARGV[8])
end
redis.call('PUBLISH', ARGV[7], ARGV[9])
return 0
"""
)

# KEYS: the app's status indexes, its queue names, its ids, then run keys.
# ARGV: the app's key stems, then the runs' ids. Puts each run in the index
# of its current status and in the lists of its id, workflow and queue, and
# its queue among the names: run once per app on data written before these
# existed. Idempotent, and atomic per call, so writers maintaining the
# indexes meanwhile are never undone.
_REINDEX = (
    _PRELUDE
    + """
local head, tail = ARGV[1], ARGV[2]
for i = 3, #ARGV do
    local id = ARGV[i]
    local r = redis.call('HMGET', KEYS[NSTATUS + i], 'status', 'created', 'queue', 'workflow')
    reindex(1, id, r[2] or 0, r[1] or '')
    if r[2] then
        redis.call('ZADD', KEYS[NSTATUS + 2], 0, id)
        redis.call('ZADD', head .. 'wlist' .. tail .. r[4], r[2], id)
        if r[3] then
            redis.call('SADD', KEYS[NSTATUS + 1], r[3])
            redis.call('ZADD', head .. 'qlist' .. tail .. r[3], r[2], id)
        end
    end
end
return #ARGV - 2
"""
)

# KEYS: run, steps, signals, the app's status indexes, the app's queue names.
# ARGV: run_id, default queue, has_steal, steal_from, the app's key stems,
#       the work channel, the app.
# Returns nil for an absent run, else {requeued, run}; see Store.requeue_run.
_REQUEUE = (
    _PRELUDE
    + """
local run, steps, signals = KEYS[1], KEYS[2], KEYS[3]
local flat = redis.call('HGETALL', run)
if #flat == 0 then return nil end
local r = {}
for i = 1, #flat, 2 do r[flat[i]] = flat[i + 1] end
local t = now()
local failed = r.status == 'failed' or r.status == 'cancelled'
local ok = r.status == 'queued' or failed
if r.status == 'running' then
    ok = (r.lease ~= nil and tonumber(r.lease) <= t) or (ARGV[3] == '1' and r.owner == ARGV[4])
end
if not ok then return {0, flat} end
local queue = r.queue or ARGV[2]
local q = qkeys(ARGV[5], ARGV[6], queue)
if failed then restart(run, steps, signals) end
if r.status == 'running' and r.queue then redis.call('SREM', q[3], ARGV[1]) end
if not r.queue then
    redis.call('ZADD', ARGV[5] .. 'qlist' .. ARGV[6] .. queue, r.created, ARGV[1])
end
local member = r.qmember
if member then
    redis.call('ZREM', q[1], member)
    redis.call('ZREM', q[2], member)
else
    member = string.format('%016x', redis.call('INCR', q[5])) .. ARGV[1]
end
redis.call('ZADD', q[1], r.priority or '0', member)
redis.call('HSET', run, 'status', 'queued', 'queue', queue, 'qmember', member, 'updated', fmt(t))
redis.call('HDEL', run, 'owner', 'lease', 'not_before')
reindex(4, ARGV[1], r.created, 'queued')
redis.call('SADD', KEYS[4 + NSTATUS], queue)
redis.call('PUBLISH', ARGV[7], ARGV[8])
return {1, redis.call('HGETALL', run)}
"""
)

# KEYS: the app's queue names. ARGV: the app's key stems.
# Returns {name, ready, delayed, running, oldest created or ''} per queue that
# holds a queued or running run. The oldest ready run has the smallest member
# (members start with the enqueue sequence number) among the ready runs and
# the delayed ones now due.
_QUEUE_STATS = (
    _PRELUDE
    + """
local t = now()
local out = {}
for _, queue in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    local q = qkeys(ARGV[1], ARGV[2], queue)
    local ready = redis.call('ZCARD', q[1])
    local due = redis.call('ZRANGEBYSCORE', q[2], '-inf', fmt(t))
    local delayed = redis.call('ZCARD', q[2]) - #due
    local running = redis.call('SCARD', q[3])
    if ready + #due + delayed + running > 0 then
        local oldest = nil
        for _, member in ipairs(redis.call('ZRANGE', q[1], 0, -1)) do
            if oldest == nil or member < oldest then oldest = member end
        end
        for _, member in ipairs(due) do
            if oldest == nil or member < oldest then oldest = member end
        end
        local created = ''
        if oldest then
            local key = ARGV[1] .. 'run' .. ARGV[2] .. string.sub(oldest, 17)
            created = redis.call('HGET', key, 'created') or ''
        end
        out[#out + 1] = {queue, ready + #due, delayed, running, created}
    end
end
return out
"""
)

# KEYS: run, steps, signals, index, the app's status indexes, layout, then the
#       queue's keys (_QUEUE_KINDS order), then the app's queue names, the
#       workflow's run list, the app's ids, the queue's run list
# ARGV: run_id, workflow, inputs, has_parent, parent, queue, priority,
#       has_not_before, not_before, nonce, layout version, the work channel, the app,
#       has_trace, trace_context
# Returns {created, run}; a new run publishes the app on the work channel.
_ENQUEUE = (
    _PRELUDE
    + """
local run, steps, signals = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', run) == 1 then
    -- A retry of a call whose first attempt created the run answers as it did.
    local created = redis.call('HGET', run, 'enqueue_nonce') == ARGV[10]
    return {created and 1 or 0, redis.call('HGETALL', run)}
end
local t = now()
local q = {}
for i = 1, #QKINDS do q[i] = KEYS[5 + NSTATUS + i] end
local member = string.format('%016x', redis.call('INCR', q[5])) .. ARGV[1]
redis.call('HSET', run, 'workflow', ARGV[2], 'status', 'queued', 'inputs', ARGV[3],
    'token', '0', 'attempts', '0', 'cancel', '0', 'created', fmt(t), 'updated', fmt(t),
    'queue', ARGV[6], 'priority', ARGV[7], 'qmember', member, 'enqueue_nonce', ARGV[10])
if ARGV[4] == '1' then redis.call('HSET', run, 'parent', ARGV[5]) end
if ARGV[14] == '1' then redis.call('HSET', run, 'trace', ARGV[15]) end
if redis.call('EXISTS', KEYS[4]) == 0 then redis.call('SET', KEYS[5 + NSTATUS], ARGV[11]) end
redis.call('DEL', steps)
redis.call('PERSIST', signals)
redis.call('ZADD', KEYS[4], fmt(t), ARGV[1])
reindex(5, ARGV[1], fmt(t), 'queued')
if ARGV[8] == '1' then
    redis.call('HSET', run, 'not_before', ARGV[9])
end
if ARGV[8] == '1' and tonumber(ARGV[9]) > t then
    redis.call('ZADD', q[2], ARGV[9], member)
else
    redis.call('ZADD', q[1], ARGV[7], member)
end
local lists = 5 + NSTATUS + #QKINDS
redis.call('SADD', KEYS[lists + 1], ARGV[6])
redis.call('ZADD', KEYS[lists + 2], fmt(t), ARGV[1])
redis.call('ZADD', KEYS[lists + 3], 0, ARGV[1])
redis.call('ZADD', KEYS[lists + 4], fmt(t), ARGV[1])
redis.call('PUBLISH', ARGV[12], ARGV[13])
return {1, redis.call('HGETALL', run)}
"""
)

# KEYS: the app's status indexes, this call's log (Keys.queue_claim), then the
#       keys of each queue (_QUEUE_KINDS order)
# ARGV: owner, ttl, limit, nonce, the app's key stems, then per queue:
#       concurrency, rate count, rate seconds ('' = no limit)
# Returns {run_id, run, steps} per run started.
_CLAIM_QUEUED = (
    _PRELUDE
    + """
local head, tail, nonce = ARGV[5], ARGV[6], ARGV[4]
local log = KEYS[NSTATUS + 1]
local function runkey(id) return head .. 'run' .. tail .. id end
local function answer(id)
    local steps = head .. 'steps' .. tail .. id
    return {id, redis.call('HGETALL', runkey(id)), redis.call('HGETALL', steps)}
end
local out = {}
local earlier = redis.call('LRANGE', log, 0, -1)
if #earlier > 0 then
    -- A retry of a call whose first attempt ran: the runs it started, if still ours.
    for _, id in ipairs(earlier) do
        local r = redis.call('HMGET', runkey(id), 'status', 'claim_nonce')
        if r[1] == 'running' and r[2] == nonce then out[#out + 1] = answer(id) end
    end
    return out
end
local t = now()
local lease = fmt(t + tonumber(ARGV[2]))
local left = tonumber(ARGV[3])
local function promote(q)
    -- Due delayed runs join the ready ones, keeping their enqueue sequence.
    local due = redis.call('ZRANGEBYSCORE', q[2], '-inf', fmt(t), 'LIMIT', 0, 1000)
    for _, m in ipairs(due) do
        local priority = redis.call('HGET', runkey(string.sub(m, 17)), 'priority')
        if priority then redis.call('ZADD', q[1], priority, m) end
        redis.call('ZREM', q[2], m)
    end
end
local function room(q, a)
    local n = left
    if ARGV[a] ~= '' then n = math.min(n, tonumber(ARGV[a]) - redis.call('SCARD', q[3])) end
    if ARGV[a + 1] == '' then
        -- Only a rate limit reads the starts: an unlimited queue keeps none.
        redis.call('DEL', q[4])
    else
        redis.call('ZREMRANGEBYSCORE', q[4], '-inf', fmt(t - tonumber(ARGV[a + 2])))
        n = math.min(n, tonumber(ARGV[a + 1]) - redis.call('ZCARD', q[4]))
    end
    return n
end
local function start(q, member)
    local id = string.sub(member, 17)
    local run = runkey(id)
    redis.call('ZREM', q[1], member)
    local r = redis.call('HMGET', run, 'status', 'created')
    if r[1] ~= 'queued' then return false end
    local token = redis.call('HINCRBY', run, 'token', 1)
    redis.call('HINCRBY', run, 'attempts', 1)
    redis.call('HSET', run, 'status', 'running', 'owner', ARGV[1], 'lease', lease,
        'started', fmt(t), 'updated', fmt(t), 'claim_nonce', nonce)
    started(q, id, member, token, t)
    reindex(1, id, r[2], 'running')
    redis.call('RPUSH', log, id)
    out[#out + 1] = answer(id)
    return true
end
local function wake(q, id)
    -- A due parked run: running again, attempts and start time kept.
    local run = runkey(id)
    redis.call('ZREM', q[6], id)
    local r = redis.call('HMGET', run, 'status', 'created')
    if r[1] ~= 'waiting' then return false end
    redis.call('HINCRBY', run, 'token', 1)
    redis.call('HSET', run, 'status', 'running', 'owner', ARGV[1], 'lease', lease,
        'updated', fmt(t), 'claim_nonce', nonce)
    redis.call('SADD', q[3], id)
    reindex(1, id, r[2], 'running')
    redis.call('RPUSH', log, id)
    out[#out + 1] = answer(id)
    return true
end
local nq = (#KEYS - NSTATUS - 1) / #QKINDS
for i = 0, nq - 1 do
    if left <= 0 then break end
    local q = {}
    for j = 1, #QKINDS do q[j] = KEYS[NSTATUS + 1 + i * #QKINDS + j] end
    promote(q)
    local n = room(q, 7 + 3 * i)
    -- Due parked runs first, earliest wake first.
    while n > 0 do
        local due = redis.call('ZRANGEBYSCORE', q[6], '-inf', fmt(t), 'LIMIT', 0, n)
        if #due == 0 then break end
        for _, id in ipairs(due) do
            if wake(q, id) then
                n = n - 1
                left = left - 1
            end
        end
    end
    while n > 0 do
        local members = redis.call('ZRANGE', q[1], 0, n - 1)
        if #members == 0 then break end
        for _, m in ipairs(members) do
            if start(q, m) then
                n = n - 1
                left = left - 1
            end
        end
    end
end
if #out > 0 then redis.call('PEXPIRE', log, 60000) end
return out
"""
)

_SCRIPTS = (
    ("enqueue", _ENQUEUE),
    ("claim_queued", _CLAIM_QUEUED),
    ("claim", _CLAIM),
    ("save_step", _SAVE_STEP),
    ("renew", _RENEW),
    ("renew_many", _RENEW_MANY),
    ("release", _RELEASE),
    ("finish", _FINISH),
    ("cancel", _CANCEL),
    ("send_signal", _SEND_SIGNAL),
    ("send_signal_once", _SEND_SIGNAL_ONCE),
    ("park", _PARK),
    ("reindex", _REINDEX),
    *_redis_retention.SCRIPTS,
    ("requeue", _REQUEUE),
    ("queue_stats", _QUEUE_STATS),
)

# 1 (no layout key): runs listed per app in one sorted set.
# 2: and per app and status. (The "queued" and "waiting" indexes came later
#    without a new layout: each starts empty, as no earlier version wrote a
#    run with that status.)
# 3: and the names of the app's queues, its ids (lexicographic), its runs per
#    workflow and per queue.
_LAYOUT_VERSION = 3
_LIST_PAGE = 200
# Runs renewed by one script call: the server runs nothing else meanwhile.
_RENEW_CHUNK = 1000
_RENEW_STATES = (LeaseState.LOST, LeaseState.OWNED, LeaseState.CANCEL_REQUESTED)


def _text(value: bytes) -> str:
    return value.decode("utf-8")


def _float(value: bytes | None) -> float | None:
    return None if value is None else float(value)


def _run_record(app: str, run_id: str, flat: Sequence[bytes] | dict[bytes, bytes]) -> RunRecord:
    fields = flat if isinstance(flat, dict) else dict(zip(flat[::2], flat[1::2], strict=True))

    def opt(name: bytes) -> str | None:
        value = fields.get(name)
        return None if value is None else _text(value)

    return RunRecord(
        app=app,
        run_id=run_id,
        workflow=_text(fields[b"workflow"]),
        status=cast(RunStatus, _text(fields[b"status"])),
        inputs=_text(fields[b"inputs"]),
        output=opt(b"output"),
        error=opt(b"error"),
        owner=opt(b"owner"),
        token=int(fields[b"token"]),
        lease_expires_at=_float(fields.get(b"lease")),
        attempts=int(fields[b"attempts"]),
        cancel_requested=fields[b"cancel"] == b"1",
        parent_run_id=opt(b"parent"),
        created_at=float(fields[b"created"]),
        updated_at=float(fields[b"updated"]),
        # Absent from runs written before queues existed.
        queue=opt(b"queue"),
        priority=int(fields.get(b"priority", b"0")),
        not_before=_float(fields.get(b"not_before")),
        started_at=_float(fields.get(b"started")),
        trace_context=opt(b"trace"),
    )


def _encode_step(step: StepRecord) -> str:
    # The status letter first lets the claim script drop failed steps without
    # parsing JSON; ASCII-only JSON round-trips every str exactly.
    body = json.dumps(
        [
            step.position,
            step.task,
            step.result,
            step.error,
            step.attempts,
            step.started_at,
            step.finished_at,
        ],
        separators=(",", ":"),
    )
    return ("f" if step.status == "failed" else "c") + body


def _decode_step(step_id: str, blob: bytes) -> StepRecord:
    position, task, result, error, attempts, started_at, finished_at = json.loads(blob[1:])
    return StepRecord(
        step_id=step_id,
        position=position,
        task=task,
        status="failed" if blob[:1] == b"f" else "completed",
        result=result,
        error=error,
        attempts=attempts,
        started_at=started_at,
        finished_at=finished_at,
    )


def _decode_steps(flat: Sequence[bytes] | dict[bytes, bytes]) -> tuple[StepRecord, ...]:
    pairs = flat.items() if isinstance(flat, dict) else zip(flat[::2], flat[1::2], strict=True)
    steps = [_decode_step(_text(step_id), blob) for step_id, blob in pairs]
    steps.sort(key=lambda s: (s.position, s.step_id))
    return tuple(steps)


def _flag(value: str | None) -> tuple[str, str]:
    return ("0", "") if value is None else ("1", value)


def _limit_args(limits: QueueLimits) -> tuple[str, str, str]:
    """A queue's limits as the claim_queued script reads them: '' for none."""
    concurrency = "" if limits.concurrency is None else str(limits.concurrency)
    if limits.rate_limit is None:
        return concurrency, "", ""
    count, seconds = limits.rate_limit
    return concurrency, str(count), repr(float(seconds))


class _Connection:
    """The redis-py client of one event loop, and how many commands are using it.

    Closing the client under a command of another task (the lease heartbeat,
    a straggler) would not stop that command: the client retries it on a new
    connection of the closed pool, which nothing would ever close. So a client
    closed while commands use it is closed by the last of them, as it ends.
    """

    __slots__ = ("client", "closing", "hook", "loop", "scripts", "subscriber", "users")

    def __init__(
        self,
        client: Any,
        loop: asyncio.AbstractEventLoop,
        hook: LoopShutdownHook,
        scripts: dict[str, Any],
    ) -> None:
        self.client = client
        self.loop = loop
        # Closes the client when its loop shuts down, if nothing closed it before.
        self.hook = hook
        # Scripts are bound to the client that registered them.
        self.scripts = scripts
        self.users = 0
        self.closing = False
        # The wait_for_work subscription, made by the first wait.
        self.subscriber: _Subscriber | None = None

    async def __aenter__(self) -> _Connection:
        self.users += 1
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.users -= 1
        if self.closing and not self.users:
            await self._shut()

    async def close(self) -> None:
        """Close the client now, or as the last command using it ends."""
        self.closing = True
        if not self.users:
            await self._shut()

    async def _shut(self) -> None:
        if self.subscriber is not None:
            await self.subscriber.close()
        await self.client.aclose()
        # Only once closed: interrupted before, the hook closes it as the loop shuts down.
        self.hook.disarm()


# Connection retries before the server was first reached; after that, enough
# more to span outage_timeout, at the backoff's mean delay once capped (the
# jittered delay is uniform between 0 and its cap).
_FIRST_CONTACT_RETRIES = 5
_MEAN_RETRY_DELAY = 0.5

# After the subscription failed (retries of the client included), wait this long.
_SUBSCRIBE_RETRY = 1.0


class _Subscriber:
    """The work channel's subscription of one client, and the waits it wakes.

    A task of its own reads the channel (on one connection of the client's
    pool) for as long as the client lives; the client's retries reconnect
    and resubscribe it, and when they give up the task subscribes afresh a
    moment later, waking every wait (messages may have been missed).
    """

    __slots__ = ("_channel", "_client", "_closed", "_task", "waiters")

    def __init__(self, client: Any, channel: str, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._channel = channel
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self.waiters = WorkWaiters(loop)

    def ensure(self) -> None:
        if not self._closed and (self._task is None or self._task.done()):
            self._task = self.waiters.loop.create_task(self._read())

    async def _read(self) -> None:
        while not self._closed:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                self.waiters.wake_all()
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message.get("type") == "message":
                        self.waiters.wake(_text(message["data"]))
            except Exception as exc:
                logger.debug("the work channel subscription failed: %r", exc)
            finally:
                # Once closing, the client's close closes its connection.
                if not self._closed:
                    await pubsub.aclose()
            await asyncio.sleep(_SUBSCRIBE_RETRY)

    def stop(self) -> None:
        """Stop reading, awaiting nothing (from the subscription's loop)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
        self.waiters.release_all()

    async def close(self) -> None:
        """Stop reading and end the waits, before the client closes."""
        self.stop()
        task, self._task = self._task, None
        # A cancellation that reaches the subscription while it connects may
        # be taken for a failed attempt and retried: cancel until it ends.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=_SUBSCRIBE_RETRY)
        if task is not None and not task.cancelled():
            task.exception()  # retrieved: it was logged when it happened


class RedisStore(Store):
    """A Store in Redis, shared by every process that uses the same server and prefix.

    ``prefix`` namespaces every key. ``ttl`` (seconds; ``finished_ttl`` is
    the same option) expires the records of a run (its steps and signals
    too) that long after it finished; a queued or running run never expires,
    and a restarted run loses the expiry. By default runs are kept forever.
    An expired run's id stays in the app's sorted-set indexes, which cannot
    expire members: listing and pruning skip such ids and drop them.
    Connection failures are retried by the client with a capped, jittered
    backoff (every script is idempotent under retry): a few times until the
    server has been reached once, so a wrong address fails fast, then for
    about ``outage_timeout`` seconds (default 60), which waits out a restart
    or a failover. Then :class:`~durable.errors.StoreUnavailableError` is
    raised.
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str = "durable",
        finished_ttl: float | None = None,
        ttl: float | None = None,
        outage_timeout: float = 60.0,
    ) -> None:
        if not outage_timeout >= 0:
            raise ConfigurationError(f"outage_timeout must be >= 0 seconds, got {outage_timeout!r}")
        if not prefix:
            raise ConfigurationError("the Redis key prefix must not be empty")
        if ttl is not None:
            if finished_ttl is not None and finished_ttl != ttl:
                raise ConfigurationError(
                    f"ttl={ttl!r} and finished_ttl={finished_ttl!r} are the same option: "
                    "give one of them"
                )
            finished_ttl = ttl
        if finished_ttl is not None and (
            isinstance(finished_ttl, bool)
            or not isinstance(finished_ttl, int | float)
            or not 0 < finished_ttl < float("inf")
        ):
            raise ConfigurationError(
                f"ttl must be a positive number of seconds, or None to keep runs; "
                f"got {finished_ttl!r}"
            )
        self.url = url
        self.prefix = prefix
        self.finished_ttl = finished_ttl
        self.outage_timeout = outage_timeout
        # Set once a client connected: failures after that are outages to wait out.
        self._reached = False
        self._keys = _Keys(prefix)
        # The client of the event loop in use; None before the first command
        # and after close().
        self._conn: _Connection | None = None
        # Apps whose status indexes _upgrade_layout found complete.
        self._indexed_apps: set[str] = set()

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r})"

    async def open(self) -> None:
        await self._connected()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if conn.loop is asyncio.get_running_loop():
            await conn.close()
        else:
            _abandon(conn)

    @property
    def ttl(self) -> float | None:
        """Seconds a finished run is kept (the ``ttl`` option); None keeps it forever."""
        return self.finished_ttl

    def _ttl_ms(self) -> str:
        """The expiry of a finished run's keys as scripts take it ('' = never)."""
        return "" if self.finished_ttl is None else str(max(1, round(self.finished_ttl * 1000)))

    async def _connected(self) -> _Connection:
        """The client of the running event loop, connecting on first use on that loop.

        A client belongs to the loop it was made on: its connections' streams
        and the pool's locks are bound to it. After ``asyncio.run`` returned and
        another began, the old client is dropped and a new one made.

        Every command runs in ``async with await self._connected() as conn:``,
        which counts it as in flight (nothing can suspend in between).
        """
        loop = asyncio.get_running_loop()
        conn = self._conn
        while conn is None or conn.loop is not loop:
            conn = await self._connect(loop)
        return conn

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection | None:
        """Connect on ``loop``; the client of ``loop`` then, None if closed meanwhile."""
        self._drop_foreign_client(loop)
        client = aioredis.Redis.from_url(
            self.url,
            decode_responses=False,
            retry=self._retry(),
        )
        scripts = {name: client.register_script(source) for name, source in _SCRIPTS}
        try:
            await client.ping()
        except BaseException as exc:
            await client.aclose()
            if isinstance(exc, redis.exceptions.RedisError | OSError):
                raise _translate(exc) from exc
            raise
        if not self._reached:
            self._reached = True
            client.set_retry(self._retry())
        if self._conn is not None and self._conn.loop is loop:
            # Another task of this loop connected while we were connecting.
            await client.aclose()
            return self._conn
        self._drop_foreign_client(loop)
        hook = LoopShutdownHook(client.aclose)
        await hook.arm()
        self._conn = _Connection(client, loop, hook, scripts)
        return self._conn

    async def _status_index(self, conn: _Connection, app: str, status: RunStatus) -> str:
        """The app's index of runs in ``status``, built first if its runs predate it."""
        if app not in self._indexed_apps:
            try:
                await self._upgrade_layout(conn, app)
            except redis.exceptions.RedisError as exc:  # from zscan_iter
                raise _translate(exc) from exc
            self._indexed_apps.add(app)
        return self._keys.status(app, status)

    async def _upgrade_layout(self, conn: _Connection, app: str) -> None:
        """Bring the app's keys, written by an older version of this store, to this layout.

        Apps whose first run was claimed by this version are marked current
        from the start. An older one gets its status indexes built here once,
        from its run index. Processes still running the older version do not
        maintain them: upgrade every process sharing the prefix together.
        """
        client = conn.client
        layout = self._keys.layout(app)
        raw = await self._call(client.get(layout))
        version = 1 if raw is None else int(raw)
        if version > _LAYOUT_VERSION:
            raise StoreError(
                f"Redis keys of app {app!r} have layout {version}, newer than this"
                f" library supports ({_LAYOUT_VERSION}); upgrade python-durable"
            )
        if version == _LAYOUT_VERSION:
            return
        # ZSCAN returns every run indexed throughout, whatever is added or
        # removed meanwhile (paging by rank could skip some); repeats are harmless.
        batch: list[str] = []
        async for raw_id, _ in client.zscan_iter(self._keys.index(app), count=_LIST_PAGE):
            batch.append(_text(raw_id))
            if len(batch) >= _LIST_PAGE:
                await self._reindex(conn, app, batch)
                batch = []
        if batch:
            await self._reindex(conn, app, batch)
        await self._call(client.set(layout, str(_LAYOUT_VERSION)))

    async def _reindex(self, conn: _Connection, app: str, run_ids: list[str]) -> None:
        keys = [
            *self._keys.statuses(app),
            self._keys.queue_names(app),
            self._keys.ids(app),
            *(self._keys.run(app, r) for r in run_ids),
        ]
        args = [*self._keys.stems(app), *run_ids]
        await self._call(conn.scripts["reindex"](keys=keys, args=args))

    def _retry(self) -> Retry:
        """The client's retry policy: brief before the server was reached, an outage's after."""
        retries = _FIRST_CONTACT_RETRIES
        if self._reached:
            retries += math.ceil(self.outage_timeout / _MEAN_RETRY_DELAY)
        backoff = ExponentialWithJitterBackoff(base=0.05, cap=2 * _MEAN_RETRY_DELAY)
        return Retry(backoff, retries=retries)

    def _drop_foreign_client(self, loop: asyncio.AbstractEventLoop) -> None:
        conn = self._conn
        if conn is not None and conn.loop is not loop:
            self._conn = None
            _abandon(conn)

    async def _call(self, awaitable: Awaitable[_T]) -> _T:
        try:
            return await awaitable
        except redis.exceptions.RedisError as exc:
            raise _translate(exc) from exc

    async def _script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        async with await self._connected() as conn:
            return await self._call(conn.scripts[name](keys=keys, args=args))

    async def claim_run(
        self,
        new: NewRun,
        *,
        owner: str,
        lease_ttl: float,
        steal_from: str | None = None,
        resume: bool = False,
    ) -> Claim:
        check_claim(new, owner, steal_from)
        acquired, run, steps = await self._script(
            "claim",
            [
                *self._keys.creation(new.app, new.run_id),
                self._keys.by_workflow(new.app, new.workflow),
                self._keys.ids(new.app),
            ],
            [
                new.run_id,
                new.workflow,
                new.inputs,
                *_flag(new.parent_run_id),
                owner,
                repr(float(lease_ttl)),
                *_flag(steal_from),
                "1" if resume else "0",
                uuid.uuid4().hex,
                str(_LAYOUT_VERSION),
                *self._keys.stems(new.app),
                *_flag(new.trace_context),
            ],
        )
        return Claim(
            _run_record(new.app, new.run_id, run), _decode_steps(steps), acquired=acquired == 1
        )

    async def save_step(self, app: str, run_id: str, token: int, step: StepRecord) -> SavedStep:
        check_step(step)
        reply = await self._script(
            "save_step",
            [self._keys.run(app, run_id), self._keys.steps(app, run_id)],
            [str(token), step.step_id, _encode_step(step)],
        )
        if reply is None:
            raise LeaseLostError(f"run {run_id!r}: token {token} no longer owns the run")
        cancel = reply[0] == b"1"
        if reply[1] == 1:
            return SavedStep(step, cancel)
        return SavedStep(_decode_step(step.step_id, reply[2]), cancel)

    async def renew_lease(self, app: str, run_id: str, token: int, lease_ttl: float) -> LeaseState:
        cancel = await self._script(
            "renew", [self._keys.run(app, run_id)], [str(token), repr(float(lease_ttl))]
        )
        if cancel is None:
            return LeaseState.LOST
        return LeaseState.CANCEL_REQUESTED if cancel == b"1" else LeaseState.OWNED

    async def renew_leases(
        self, app: str, leases: Sequence[tuple[str, int]], lease_ttl: float
    ) -> dict[str, LeaseState]:
        """One script call per thousand runs, each renewing its runs atomically."""
        states: dict[str, LeaseState] = {}
        ttl = repr(float(lease_ttl))
        for start in range(0, len(leases), _RENEW_CHUNK):
            chunk = leases[start : start + _RENEW_CHUNK]
            replies = await self._script(
                "renew_many",
                [self._keys.run(app, run_id) for run_id, _ in chunk],
                [ttl, *(str(token) for _, token in chunk)],
            )
            for (run_id, _), reply in zip(chunk, replies, strict=True):
                states[run_id] = _RENEW_STATES[int(reply)]
        return states

    async def release_run(self, app: str, run_id: str, token: int) -> None:
        await self._script("release", [self._keys.run(app, run_id)], [str(token)])

    async def finish_run(
        self,
        app: str,
        run_id: str,
        token: int,
        status: FinalStatus,
        *,
        output: str | None = None,
        error: str | None = None,
    ) -> RunRecord:
        check_json(output=output, error=error)
        k = self._keys
        ttl_ms = self._ttl_ms()
        run = await self._script(
            "finish",
            [k.run(app, run_id), k.steps(app, run_id), k.signals(app, run_id), *k.statuses(app)],
            [
                str(token),
                status,
                *_flag(output),
                *_flag(error),
                uuid.uuid4().hex,
                ttl_ms,
                run_id,
                *k.stems(app),
                k.work_channel(),
                app,
            ],
        )
        if run is None:
            raise LeaseLostError(f"run {run_id!r}: token {token} no longer owns the run")
        return _run_record(app, run_id, run)

    async def request_cancel(self, app: str, run_id: str) -> RunRecord | None:
        k = self._keys
        run = await self._script(
            "cancel",
            [k.run(app, run_id), *k.statuses(app)],
            [run_id, *k.stems(app), self._ttl_ms()],
        )
        return None if run is None else _run_record(app, run_id, run)

    async def load_run(
        self, app: str, run_id: str
    ) -> tuple[RunRecord, tuple[StepRecord, ...]] | None:
        async with await self._connected() as conn:
            # MULTI/EXEC: one round trip and one consistent view of run and steps.
            pipe = conn.client.pipeline(transaction=True)
            pipe.hgetall(self._keys.run(app, run_id))
            pipe.hgetall(self._keys.steps(app, run_id))
            run, steps = await self._call(pipe.execute())
        if not run:
            return None
        return _run_record(app, run_id, run), _decode_steps(steps)

    async def get_run(self, app: str, run_id: str) -> RunRecord | None:
        async with await self._connected() as conn:
            run = await self._call(conn.client.hgetall(self._keys.run(app, run_id)))
        return _run_record(app, run_id, run) if run else None

    async def list_runs(
        self,
        app: str,
        *,
        status: RunStatus | None = None,
        workflow: str | None = None,
        limit: int = 100,
        queue: str | None = None,
        since: float | None = None,
        until: float | None = None,
        id_prefix: str | None = None,
        after: tuple[float, str] | None = None,
    ) -> Sequence[RunRecord]:
        query = ListQuery(app, status, workflow, queue, since, until, id_prefix, after, limit)
        async with await self._connected() as conn:
            return await self._list_runs(conn, query)

    async def _list_runs(self, conn: _Connection, query: ListQuery) -> list[RunRecord]:
        app = query.app
        # Each filter has its sorted set: recover() lists the running runs
        # among every run ever stored. The most selective one is read; the
        # other filters are tested on the runs it yields.
        index = await self._status_index(conn, app, query.status or "running")
        if query.id_prefix:
            return await self._list_by_prefix(conn, query)
        if query.status is None:
            if query.queue is not None:
                index = self._keys.by_queue(app, query.queue)
            elif query.workflow is not None:
                index = self._keys.by_workflow(app, query.workflow)
            else:
                index = self._keys.index(app)
        # Time bounds and the cursor are score ranges of the index; members of
        # one score come in descending byte order, the listing's tie-break.
        high = "+inf" if query.until is None else f"({query.until!r}"
        if query.after is not None and (query.until is None or query.after[0] < query.until):
            high = repr(query.after[0])
        low = "-inf" if query.since is None else repr(query.since)
        page = max(1, min(query.limit, _LIST_PAGE))
        found: list[RunRecord] = []
        offset = 0
        while len(found) < query.limit:
            ids = await self._call(
                conn.client.zrevrangebyscore(index, high, low, start=offset, num=page)
            )
            if not ids:
                break
            offset += len(ids)
            found += await self._matching(conn, query, ids, index)
        return found[: query.limit]

    async def _list_by_prefix(self, conn: _Connection, query: ListQuery) -> list[RunRecord]:
        """The runs whose id starts with the prefix, from the app's lexicographic id set."""
        prefix = cast(str, query.id_prefix)
        end = prefix_end(prefix)
        low = b"[" + prefix.encode()
        high = b"+" if end is None else b"(" + end.encode()
        index = self._keys.ids(query.app)
        found: list[RunRecord] = []
        offset = 0
        while True:
            ids = await self._call(
                conn.client.zrangebylex(index, low, high, start=offset, num=_LIST_PAGE)
            )
            if not ids:
                break
            offset += len(ids)
            found += await self._matching(conn, query, ids, index)
        found.sort(key=listing_key, reverse=True)
        return found[: query.limit]

    async def _matching(
        self, conn: _Connection, query: ListQuery, ids: list[bytes], index: str
    ) -> list[RunRecord]:
        """The runs of these ids that pass the query's filters, in the order given."""
        app = query.app
        pipe = conn.client.pipeline(transaction=False)
        for raw_id in ids:
            pipe.hgetall(self._keys.run(app, _text(raw_id)))
        found: list[RunRecord] = []
        expired: list[bytes] = []
        for raw_id, fields in zip(ids, await self._call(pipe.execute()), strict=True):
            if not fields:
                expired.append(raw_id)
                continue
            run = _run_record(app, _text(raw_id), fields)
            if query.matches(run):
                found.append(run)
        if expired:
            # Runs removed by finished_ttl leave their index entries behind.
            pipe = conn.client.pipeline(transaction=False)
            for key in {index, self._keys.index(app), self._keys.ids(app)}:
                pipe.zrem(key, *expired)
            for key in self._keys.statuses(app):
                pipe.zrem(key, *expired)
            await self._call(pipe.execute())
        return found

    # -- retention ---------------------------------------------------------

    async def delete_run(self, app: str, run_id: str) -> RunRecord | None:
        check_names(app=app, run_id=run_id)
        k = self._keys
        keys = [
            k.run(app, run_id),
            k.steps(app, run_id),
            k.signals(app, run_id),
            k.deletion(app, uuid.uuid4().hex),
            k.index(app),
            k.ids(app),
            *k.statuses(app),
        ]
        reply = await self._script("delete_run", keys, [run_id, *k.stems(app)])
        if reply is None:
            return None
        if reply[0] == 0:
            raise not_finished(app, run_id, _text(reply[1]))
        return _run_record(app, run_id, reply[1])

    async def prune_runs(
        self,
        app: str,
        *,
        finished_before: float,
        statuses: Sequence[FinalStatus],
        limit: int,
    ) -> int:
        """Several short script calls, each atomic: a call reads a bounded page of an index."""
        check_prune(app, statuses, limit)
        return await self._prune(app, finished_before, statuses, limit, dry_run=False)

    async def count_prunable_runs(
        self, app: str, *, finished_before: float, statuses: Sequence[FinalStatus]
    ) -> int:
        check_prune(app, statuses)
        return await self._prune(app, finished_before, statuses, None, dry_run=True)

    async def _prune(
        self,
        app: str,
        finished_before: float,
        statuses: Sequence[FinalStatus],
        limit: int | None,
        *,
        dry_run: bool,
    ) -> int:
        k = self._keys
        total = 0
        async with await self._connected() as conn:
            for status in dict.fromkeys(statuses):
                index = await self._status_index(conn, app, status)
                keys = [index, k.index(app), k.ids(app), *k.statuses(app)]
                offset = 0
                while limit is None or total < limit:
                    wanted = _redis_retention.SCAN_PAGE if limit is None else limit - total
                    args = [repr(float(finished_before)), str(wanted), str(offset)]
                    args += ["1" if dry_run else "0", status, *k.stems(app)]
                    deleted, skipped, exhausted = await self._call(
                        conn.scripts["prune"](keys=keys, args=args)
                    )
                    total += int(deleted)
                    offset += int(skipped)
                    if exhausted:
                        break
        return total

    # -- listing -----------------------------------------------------------

    async def queue_stats(self, app: str) -> list[QueueCounts]:
        check_names(app=app)
        async with await self._connected() as conn:
            # Keys written by an older layout get their queue names first.
            await self._status_index(conn, app, "queued")
            rows = await self._call(
                conn.scripts["queue_stats"](
                    keys=[self._keys.queue_names(app)], args=list(self._keys.stems(app))
                )
            )
        return merge_counts(
            QueueCounts(
                _text(name),
                int(ready),
                int(delayed),
                int(running),
                float(oldest) if oldest else None,
            )
            for name, ready, delayed, running, oldest in rows
        )

    async def requeue_run(
        self, app: str, run_id: str, *, queue: str, steal_from: str | None = None
    ) -> tuple[RunRecord, bool] | None:
        check_names(app=app, run_id=run_id, queue=queue, steal_from=steal_from)
        keys = self._keys
        answer = await self._script(
            "requeue",
            [
                keys.run(app, run_id),
                keys.steps(app, run_id),
                keys.signals(app, run_id),
                *keys.statuses(app),
                keys.queue_names(app),
            ],
            [
                run_id,
                queue,
                *_flag(steal_from),
                *keys.stems(app),
                keys.work_channel(),
                app,
            ],
        )
        if answer is None:
            return None
        requeued, fields = answer
        return _run_record(app, run_id, fields), bool(requeued)

    async def enqueue_run(self, new: NewRun) -> tuple[RunRecord, bool]:
        check_enqueue(new)
        queue = cast(str, new.queue)  # check_enqueue refuses None
        not_before = None if new.not_before is None else repr(float(new.not_before))
        created, run = await self._script(
            "enqueue",
            [
                *self._keys.creation(new.app, new.run_id),
                *self._keys.queues(new.app, queue),
                self._keys.queue_names(new.app),
                self._keys.by_workflow(new.app, new.workflow),
                self._keys.ids(new.app),
                self._keys.by_queue(new.app, queue),
            ],
            [
                new.run_id,
                new.workflow,
                new.inputs,
                *_flag(new.parent_run_id),
                queue,
                str(new.priority),
                *_flag(not_before),
                uuid.uuid4().hex,
                str(_LAYOUT_VERSION),
                self._keys.work_channel(),
                new.app,
                *_flag(new.trace_context),
            ],
        )
        return _run_record(new.app, new.run_id, run), created == 1

    async def wait_for_work(
        self,
        app: str,
        timeout: float,  # noqa: ASYNC109 - the API
        *,
        queues: Sequence[str] = (),
    ) -> bool:
        """Woken by what enqueues and queued runs' finishes publish, from any process.

        The first wait on an event loop subscribes to the prefix's work
        channel, on a connection of its own that closes with the store. A
        lost subscription is renewed; meanwhile waits last ``timeout``.
        """
        check_names(app=app)
        return await self._wait_published(app, timeout, [slot_topic(app, q) for q in queues])

    async def wait_for_signal(self, app: str, timeout: float) -> bool:  # noqa: ASYNC109 - the API
        """Woken by what every signal sent to a run of ``app`` publishes, from any process.

        It shares the subscription of :meth:`wait_for_work`.
        """
        check_names(app=app)
        return await self._wait_published(signal_topic(app), timeout)

    async def _wait_published(
        self,
        topic: str,
        timeout: float,  # noqa: ASYNC109
        also: Sequence[str] = (),
    ) -> bool:
        try:
            conn = await self._connected()
        except Exception:
            await asyncio.sleep(timeout)
            return False
        if conn.closing:
            await asyncio.sleep(timeout)
            return False
        subscriber = conn.subscriber
        if subscriber is None:
            subscriber = conn.subscriber = _Subscriber(
                conn.client, self._keys.work_channel(), conn.loop
            )
        subscriber.ensure()
        return await subscriber.waiters.wait(topic, timeout, also)

    async def claim_queued(
        self,
        app: str,
        queues: Sequence[QueueLimits],
        *,
        owner: str,
        lease_ttl: float,
        limit: int,
    ) -> list[Claim]:
        """One script call, starting the runs of every queue atomically."""
        check_names(app=app, owner=owner)
        if limit < 1 or not queues:
            return []
        k, nonce = self._keys, uuid.uuid4().hex
        keys = [*k.statuses(app), k.queue_claim(app, nonce)]
        args = [owner, repr(float(lease_ttl)), str(limit), nonce, *k.stems(app)]
        for limits in queues:
            keys += k.queues(app, limits.name)
            args += _limit_args(limits)
        started = await self._script("claim_queued", keys, args)
        return [
            Claim(_run_record(app, _text(run_id), run), _decode_steps(steps), acquired=True)
            for run_id, run, steps in started
        ]

    def _signal_call(
        self, app: str, run_id: str, name: str, payload: str, nonce: str
    ) -> tuple[list[str], list[str]]:
        """KEYS and ARGV of the scripts that send a signal."""
        k = self._keys
        keys = [k.signals(app, run_id), k.run(app, run_id)]
        argv = [name, payload, nonce, run_id, *k.stems(app), k.work_channel(), app]
        return keys, [*argv, signal_topic(app)]

    async def send_signal(self, app: str, run_id: str, name: str, payload: str) -> int:
        check_signal(app, run_id, name, payload)
        index = await self._script(
            "send_signal", *self._signal_call(app, run_id, name, payload, uuid.uuid4().hex)
        )
        return int(index)

    async def send_signal_once(self, app: str, run_id: str, name: str, payload: str) -> bool:
        check_signal(app, run_id, name, payload)
        index = await self._script(
            "send_signal_once", *self._signal_call(app, run_id, name, payload, uuid.uuid4().hex)
        )
        return int(index) == 0

    async def park_run(
        self,
        app: str,
        run_id: str,
        token: int,
        *,
        queue: str,
        wake_at: float | None,
        signal: tuple[str, int] | None = None,
    ) -> None:
        check_names(app=app, run_id=run_id, queue_name=queue)
        name, index = signal if signal is not None else ("", 0)
        if signal is not None:
            check_names(signal_name=name)
        k = self._keys
        parked = await self._script(
            "park",
            [
                k.run(app, run_id),
                k.signals(app, run_id),
                *k.statuses(app),
                k.queue_names(app),
            ],
            [
                str(token),
                run_id,
                queue,
                "" if wake_at is None else repr(float(wake_at)),
                "1" if signal is not None else "0",
                name,
                str(index),
                *k.stems(app),
                k.work_channel(),
                app,
            ],
        )
        if not parked:
            raise LeaseLostError(f"run {run_id!r}: token {token} no longer owns the run")

    async def read_signal(self, app: str, run_id: str, name: str, index: int) -> str | None:
        async with await self._connected() as conn:
            payload = await self._call(
                conn.client.hget(self._keys.signals(app, run_id), f"v:{index}:{name}")
            )
        return None if payload is None else _text(payload)

    async def read_signals(
        self, app: str, wanted: Sequence[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], str]:
        """One pipelined round trip: an HMGET of each run's signal hash."""
        check_signal_keys(app, wanted)
        if not wanted:
            return {}
        per_run: dict[str, list[tuple[str, str, int]]] = {}
        for key in wanted:
            per_run.setdefault(key[0], []).append(key)
        async with await self._connected() as conn:
            pipe = conn.client.pipeline(transaction=False)
            for run_id, keys in per_run.items():
                pipe.hmget(
                    self._keys.signals(app, run_id), [f"v:{i}:{name}" for _, name, i in keys]
                )
            replies = await self._call(pipe.execute())
        found: dict[tuple[str, str, int], str] = {}
        for keys, payloads in zip(per_run.values(), replies, strict=True):
            for key, payload in zip(keys, payloads, strict=True):
                if payload is not None:
                    found[key] = _text(payload)
        return found


def _abandon(conn: _Connection) -> None:
    """Drop a client made on another event loop, awaiting nothing.

    With the fast path, its connections are closed on their own loop if that
    loop is still open (it may run again), else at once here: a closed loop
    cannot run the close. Commands still in flight on that loop close the
    client themselves once the last one ended. Without the fast path, its
    hook closes them when their loop shuts down, or keeps them referenced if
    it was closed without shutting down. Either way nothing is left to warn
    about an unclosed connection, stream, transport or socket when it is
    garbage-collected.
    """
    conn.closing = True
    if not redis_fastpaths.available():
        return
    pool = conn.client.connection_pool

    def on_loop() -> None:
        if conn.subscriber is not None:
            conn.subscriber.stop()
        if conn.users:
            return  # The last command in flight closes the client, on this loop.
        # Taken only now: were the loop closed before running this, the
        # connections would stay whole, and referenced by the hook.
        for writer in redis_fastpaths.take_writers(pool) or ():
            writer.close()
        conn.hook.disarm()

    def without_loop() -> None:
        for writer in redis_fastpaths.take_writers(pool) or ():
            asyncio_fastpaths.close_transport_now(writer.transport)
        conn.hook.disarm()

    close_on_loop(conn.loop, on_loop, without_loop)


def _translate(exc: Exception) -> Exception:
    """The durable error to raise for a driver error (the one translation point)."""
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError | OSError):
        return StoreUnavailableError(f"Redis is unavailable: {exc}")
    if isinstance(exc, redis.exceptions.RedisError):
        return StoreError(f"Redis error: {exc}")
    return exc


def from_url(url: str) -> RedisStore:
    """A store for a ``redis://``, ``rediss://`` or ``unix://`` URL.

    An optional ``prefix`` query parameter sets the key prefix.
    """
    scheme = url.partition("://")[0]
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(f"not a Redis URL: {scheme}://...")
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for key, value in query if key == "prefix"]
    if not prefixes:
        return RedisStore(url)
    rest = urlencode([(key, value) for key, value in query if key != "prefix"])
    return RedisStore(urlunsplit(parts._replace(query=rest)), prefix=prefixes[-1])
