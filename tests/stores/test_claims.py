"""The one claim decision both Python stores use: which claims acquire a run, and how."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable.stores._claims import ClaimAction, ClaimRequest, decide_claim
from durable.stores.base import NewRun, RunRecord

NOW = 1000.0
NEW = NewRun("app", "run-1", "wf", '{"n": 1}', parent_run_id="parent")


def _run(**changes: Any) -> RunRecord:
    fields: dict[str, Any] = {
        "app": "app",
        "run_id": "run-1",
        "workflow": "wf",
        "status": "running",
        "inputs": '{"n": 1}',
        "output": None,
        "error": None,
        "owner": "alice",
        "token": 3,
        "lease_expires_at": NOW + 10,
        "attempts": 2,
        "cancel_requested": False,
        "parent_run_id": None,
        "created_at": 1.0,
        "updated_at": 2.0,
    }
    fields.update(changes)
    return RunRecord(**fields)


def _request(**changes: Any) -> ClaimRequest:
    return ClaimRequest(**{"new": NEW, "owner": "bob", "lease_ttl": 30.0, **changes})


def test_missing_run_is_created_with_the_first_token() -> None:
    """No run yet: the claim creates it, owned by the caller with token 1 and a fresh lease."""
    decision = decide_claim(None, _request(), NOW)
    assert decision.action is ClaimAction.CREATE
    assert decision.acquired
    assert not decision.drops_failed_steps
    assert decision.run == RunRecord(
        app="app",
        run_id="run-1",
        workflow="wf",
        status="running",
        inputs='{"n": 1}',
        output=None,
        error=None,
        owner="bob",
        token=1,
        lease_expires_at=NOW + 30,
        attempts=1,
        cancel_requested=False,
        parent_run_id="parent",
        created_at=NOW,
        updated_at=NOW,
        started_at=NOW,
    )


def test_a_queued_run_is_started_here() -> None:
    """A queued run is started by the claim: token and attempts grow, started_at is now,
    its queue fields stay, and its not_before is not waited for."""
    queued = _run(
        status="queued",
        owner=None,
        token=0,
        attempts=0,
        lease_expires_at=None,
        queue="orders",
        priority=3,
        not_before=NOW + 3600,
    )
    decision = decide_claim(queued, _request(), NOW)
    assert decision.action is ClaimAction.START
    assert decision.acquired
    assert not decision.drops_failed_steps
    run = decision.run
    assert (run.status, run.owner, run.token, run.attempts) == ("running", "bob", 1, 1)
    assert (run.queue, run.priority, run.not_before) == ("orders", 3, NOW + 3600)
    assert (run.started_at, run.lease_expires_at) == (NOW, NOW + 30)


def test_a_queued_run_with_other_inputs_is_kept() -> None:
    """Other inputs leave a queued run as it is."""
    queued = _run(status="queued", owner=None, token=0, attempts=0, inputs='{"n": 2}')
    assert decide_claim(queued, _request(), NOW).action is ClaimAction.KEEP


@pytest.mark.parametrize(
    ("current", "request_changes", "action"),
    [
        (_run(), {}, ClaimAction.KEEP),  # a live lease of someone else
        (_run(owner="bob"), {}, ClaimAction.KEEP),  # a live lease of the caller: no re-entry
        (_run(lease_expires_at=NOW), {}, ClaimAction.TAKE_OVER),  # expired exactly now
        (_run(lease_expires_at=NOW - 5), {}, ClaimAction.TAKE_OVER),
        (_run(owner=None, lease_expires_at=NOW - 1), {}, ClaimAction.TAKE_OVER),  # released
        (_run(lease_expires_at=None), {}, ClaimAction.KEEP),
        (_run(), {"steal_from": "alice"}, ClaimAction.TAKE_OVER),
        (_run(), {"steal_from": "carol"}, ClaimAction.KEEP),
        (_run(owner=None), {"steal_from": "alice"}, ClaimAction.KEEP),
        (_run(status="failed", owner=None), {}, ClaimAction.RESTART),
        (_run(status="cancelled"), {}, ClaimAction.KEEP),
        (_run(status="cancelled"), {"resume": True}, ClaimAction.RESTART),
        (_run(status="completed", lease_expires_at=None), {}, ClaimAction.KEEP),
        (_run(status="completed"), {"resume": True, "steal_from": "alice"}, ClaimAction.KEEP),
        (_run(workflow="other", status="failed"), {}, ClaimAction.KEEP),
        (_run(workflow="other", lease_expires_at=0.0), {}, ClaimAction.KEEP),
        (_run(inputs='{"n": 2}', status="failed"), {}, ClaimAction.KEEP),  # other inputs
        (_run(inputs='{"n": 2}', lease_expires_at=0.0), {"steal_from": "alice"}, ClaimAction.KEEP),
        (_run(inputs='{"n":1}', status="failed"), {}, ClaimAction.KEEP),  # compared as text
    ],
)
def test_existing_run_rules(
    current: RunRecord, request_changes: dict[str, Any], action: ClaimAction
) -> None:
    """Each state of an existing run leads to the documented action."""
    decision = decide_claim(current, _request(**request_changes), NOW)
    assert decision.action is action
    assert decision.acquired is (action is not ClaimAction.KEEP)


def test_restart_clears_error_and_cancel_request() -> None:
    """A restarted run forgets its error and cancel request, and drops its failed steps."""
    current = _run(status="cancelled", error='"boom"', cancel_requested=True, owner=None)
    decision = decide_claim(current, _request(resume=True), NOW)
    assert decision.drops_failed_steps
    assert decision.run == dataclasses.replace(
        current,
        status="running",
        error=None,
        owner="bob",
        token=4,
        lease_expires_at=NOW + 30,
        attempts=3,
        cancel_requested=False,
        updated_at=NOW,
    )


def test_take_over_keeps_error_and_cancel_request() -> None:
    """A taken-over run keeps its cancel request: the new owner must still honour it."""
    current = _run(lease_expires_at=NOW - 1, cancel_requested=True, error='"x"')
    decision = decide_claim(current, _request(), NOW)
    assert decision.action is ClaimAction.TAKE_OVER
    assert not decision.drops_failed_steps
    assert decision.run.cancel_requested
    assert decision.run.error == '"x"'
    assert decision.run.token == 4


_statuses = st.sampled_from(["running", "completed", "failed", "cancelled"])
_owners = st.sampled_from([None, "alice", "bob", "carol"])
_times = st.one_of(st.none(), st.floats(NOW - 100, NOW + 100))


@st.composite
def _cases(draw: st.DrawFn) -> tuple[RunRecord, ClaimRequest]:
    current = _run(
        workflow=draw(st.sampled_from(["wf", "other"])),
        status=draw(_statuses),
        owner=draw(_owners),
        token=draw(st.integers(1, 10**6)),
        lease_expires_at=draw(_times),
        attempts=draw(st.integers(1, 100)),
        cancel_requested=draw(st.booleans()),
        error=draw(st.sampled_from([None, '"e"'])),
    )
    request = _request(
        owner=draw(st.sampled_from(["alice", "bob"])),
        lease_ttl=draw(st.floats(0.1, 600)),
        steal_from=draw(_owners),
        resume=draw(st.booleans()),
    )
    return current, request


@given(_cases())
def test_decisions_are_consistent(case: tuple[RunRecord, ClaimRequest]) -> None:
    """Any claim either leaves the run untouched or hands it to the caller with a newer token."""
    current, request = case
    decision = decide_claim(current, request, NOW)
    if not decision.acquired:
        assert decision.run is current
        return
    run = decision.run
    assert current.workflow == request.new.workflow
    assert current.status != "completed"
    assert (run.status, run.owner) == ("running", request.owner)
    assert run.token == current.token + 1
    assert run.attempts == current.attempts + 1
    assert run.lease_expires_at == NOW + request.lease_ttl
    assert (run.app, run.run_id, run.inputs, run.created_at) == (
        current.app,
        current.run_id,
        current.inputs,
        current.created_at,
    )
    if decision.action is ClaimAction.TAKE_OVER:
        assert current.status == "running"
        assert run.cancel_requested == current.cancel_requested
    else:
        assert current.status in ("failed", "cancelled")
        assert not run.cancel_requested


@given(_cases())
def test_a_live_lease_is_only_stolen_on_request(case: tuple[RunRecord, ClaimRequest]) -> None:
    """A running run with an unexpired lease goes only to a caller naming its owner."""
    current, request = case
    live = current.lease_expires_at is None or current.lease_expires_at > NOW
    if current.status != "running" or not live:
        return
    decision = decide_claim(current, request, NOW)
    named = request.steal_from is not None and request.steal_from == current.owner
    assert decision.acquired is (named and current.workflow == request.new.workflow)
