"""Whether ``claim_run`` acquires a run: one pure decision for the stores written in Python.

The SQLite and in-memory stores read the current run, ask :func:`decide_claim`
and store what it answers; the rules live here only, so the two cannot drift
apart. (PostgreSQL and Redis decide inside the server, in SQL and Lua.)
"""

from __future__ import annotations

import dataclasses
import enum

from durable.stores.base import NewRun, RunRecord

__all__ = ["ClaimAction", "ClaimDecision", "ClaimRequest", "decide_claim"]


class ClaimAction(enum.Enum):
    """What the store has to write for a claim."""

    # No such run yet: insert it.
    CREATE = "create"
    # A failed run, or a cancelled one resumed: run it again, minus its failed steps.
    RESTART = "restart"
    # A queued run: start it here, now.
    START = "start"
    # A running run whose lease expired, or whose owner is being stolen from.
    TAKE_OVER = "take_over"
    # Anything else (a live lease, completed, another workflow or inputs): write nothing.
    KEEP = "keep"


# Plain slotted classes: dataclasses would cost import time for no gain.


class ClaimRequest:
    """The arguments of ``claim_run``."""

    __slots__ = ("lease_ttl", "new", "owner", "resume", "steal_from")

    def __init__(
        self,
        new: NewRun,
        owner: str,
        lease_ttl: float,
        steal_from: str | None = None,
        resume: bool = False,
    ) -> None:
        self.new = new
        self.owner = owner
        self.lease_ttl = lease_ttl
        self.steal_from = steal_from
        self.resume = resume


class ClaimDecision:
    """The action, and the run record as it must be stored (unchanged for KEEP)."""

    __slots__ = ("action", "run")

    def __init__(self, action: ClaimAction, run: RunRecord) -> None:
        self.action = action
        self.run = run

    @property
    def acquired(self) -> bool:
        """True when the caller now owns the run."""
        return self.action is not ClaimAction.KEEP

    @property
    def drops_failed_steps(self) -> bool:
        """True when the run's failed steps must be deleted: they run again."""
        return self.action is ClaimAction.RESTART


def decide_claim(current: RunRecord | None, request: ClaimRequest, now: float) -> ClaimDecision:
    """What a claim does to ``current`` (None: no such run) at store time ``now``."""
    if current is None:
        return ClaimDecision(ClaimAction.CREATE, _created(request, now))
    action = _action(current, request, now)
    if action is ClaimAction.KEEP:
        return ClaimDecision(action, current)
    restart = action is ClaimAction.RESTART
    run = dataclasses.replace(
        current,
        status="running",
        error=None if restart else current.error,
        owner=request.owner,
        token=current.token + 1,
        lease_expires_at=now + request.lease_ttl,
        attempts=current.attempts + 1,
        cancel_requested=False if restart else current.cancel_requested,
        updated_at=now,
        started_at=now if action is ClaimAction.START else current.started_at,
    )
    return ClaimDecision(action, run)


def _action(current: RunRecord, request: ClaimRequest, now: float) -> ClaimAction:
    if current.workflow != request.new.workflow or current.inputs != request.new.inputs:
        # Another workflow's run under this id, or this run called with other
        # inputs, is never touched: the caller reports the conflict.
        return ClaimAction.KEEP
    if current.status == "queued":
        return ClaimAction.START
    if current.status == "failed" or (current.status == "cancelled" and request.resume):
        return ClaimAction.RESTART
    if current.status != "running":
        return ClaimAction.KEEP
    expired = current.lease_expires_at is not None and current.lease_expires_at <= now
    stolen = request.steal_from is not None and current.owner == request.steal_from
    return ClaimAction.TAKE_OVER if expired or stolen else ClaimAction.KEEP


def _created(request: ClaimRequest, now: float) -> RunRecord:
    new = request.new
    return RunRecord(
        app=new.app,
        run_id=new.run_id,
        workflow=new.workflow,
        status="running",
        inputs=new.inputs,
        output=None,
        error=None,
        owner=request.owner,
        token=1,
        lease_expires_at=now + request.lease_ttl,
        attempts=1,
        cancel_requested=False,
        parent_run_id=new.parent_run_id,
        created_at=now,
        updated_at=now,
        started_at=now,
        trace_context=new.trace_context,
    )
