"""Fixtures of the crash tests: a fork server of worker processes, a database and a journal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.crash._harness import ForkServer, fork_server


@pytest.fixture
def server() -> Iterator[ForkServer]:
    """A fork server whose children run the torture workflow."""
    with fork_server() as s:
        yield s


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """The SQLite file the children share."""
    return tmp_path / "crash.db"


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    """The external append-only journal of task body executions."""
    return tmp_path / "journal.txt"
