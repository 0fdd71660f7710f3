"""`durable runs delete` and `durable prune`: what they delete, refuse and print."""

from __future__ import annotations

import json

from tests.cli.conftest import Durable
from tests.cli.test_action_commands import stored

COMPLETED = ("total-2-3", "total-0-0", "total-1-1", "batch-2", "approval-o-2")
# Every run the seed finished has ended by the time the command runs.
TINY_AGE = "0.000001s"


def test_delete_removes_finished_runs(durable: Durable) -> None:
    """Deleting a completed and a failed run removes both from the store."""
    result = durable("runs", "delete", "total-2-3", "checkout-o-1")
    assert result.exit_code == 0, result.output
    assert "total-2-3: deleted" in result.stdout
    assert stored(durable.db, "total-2-3") is None
    assert stored(durable.db, "checkout-o-1") is None
    assert stored(durable.db, "batch-2") is not None


def test_delete_refuses_an_unfinished_run(durable: Durable) -> None:
    """A queued run is refused with exit 1 and stays; unknown ids are refused too."""
    result = durable("runs", "delete", "approval-o-queued", "nope")
    assert result.exit_code == 1
    assert "is queued, not finished" in result.stderr
    assert "no run 'nope'" in result.stderr
    assert stored(durable.db, "approval-o-queued").status == "queued"


def test_delete_force_cancels_first(durable: Durable) -> None:
    """--force cancels an unfinished run, then deletes it."""
    result = durable("runs", "delete", "--force", "approval-o-queued")
    assert result.exit_code == 0, result.output
    assert stored(durable.db, "approval-o-queued") is None


def test_prune_dry_run_counts_and_keeps(durable: Durable) -> None:
    """--dry-run counts the matching finished runs and deletes nothing."""
    result = durable("prune", "--older-than", TINY_AGE, "--status", "completed", "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"{len(COMPLETED)} run(s) would be deleted (dry run)" in result.stdout
    assert all(stored(durable.db, run_id) is not None for run_id in COMPLETED)


def test_prune_deletes_only_the_chosen_finished_runs(durable: Durable) -> None:
    """Completed runs go; the failed and the queued run stay."""
    result = durable("prune", "--older-than", TINY_AGE, "--status", "completed", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "dry_run": False,
        "matched": len(COMPLETED),
        "deleted": len(COMPLETED),
    }
    assert all(stored(durable.db, run_id) is None for run_id in COMPLETED)
    assert stored(durable.db, "checkout-o-1").status == "failed"
    assert stored(durable.db, "approval-o-queued").status == "queued"


def test_prune_keeps_recent_runs(durable: Durable) -> None:
    """Runs younger than --older-than are kept."""
    result = durable("prune", "--older-than", "30d")
    assert result.exit_code == 0, result.output
    assert "0 run(s) deleted" in result.stdout
    assert all(stored(durable.db, run_id) is not None for run_id in COMPLETED)


def test_prune_rejects_bad_ages_and_statuses(durable: Durable) -> None:
    """An unreadable or zero age, or an unfinished status, is a usage error."""
    for args in (
        ("--older-than", "soon"),
        ("--older-than", "0s"),
        ("--older-than", "1d", "--status", "running"),
    ):
        result = durable("prune", *args)
        assert result.exit_code == 2, (args, result.output)
    assert durable("prune", "--older-than", "1d", "--status", "running").stderr.count(
        "never pruned"
    )
    assert all(stored(durable.db, run_id) is not None for run_id in COMPLETED)
