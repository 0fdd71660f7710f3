"""What every store shares to delete runs: the refusal of an unfinished run, the argument checks."""

from __future__ import annotations

from collections.abc import Sequence

from durable.errors import ConfigurationError, RunNotFinishedError
from durable.stores._checks import check_names
from durable.stores.base import FINAL_STATUSES, FinalStatus


def not_finished(app: str, run_id: str, status: str) -> RunNotFinishedError:
    """The error for a delete of a run that is still ``status``."""
    return RunNotFinishedError(
        f"run {run_id!r} of app {app!r} is {status}, not finished: only completed, failed "
        "or cancelled runs can be deleted (cancel it first)",
        run_id=run_id,
        status=status,
    )


def check_prune(app: str, statuses: Sequence[str], limit: int | None = None) -> None:
    """Reject a prune of unfinished statuses or with a limit below 1 (nothing deleted yet)."""
    check_names(app=app)
    unfinished = [s for s in statuses if s not in FINAL_STATUSES]
    if unfinished:
        raise ConfigurationError(
            f"cannot prune runs with status {', '.join(map(repr, unfinished))}: only finished "
            f"runs ({', '.join(FINAL_STATUSES)}) are ever pruned"
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigurationError(f"prune batch size must be an int >= 1, got {limit!r}")


def final_statuses(statuses: Sequence[str]) -> tuple[FinalStatus, ...]:
    """``statuses`` (already checked) deduplicated, typed as final statuses."""
    return tuple(s for s in FINAL_STATUSES if s in statuses)
