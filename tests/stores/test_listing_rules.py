"""The pure listing rules: id-prefix ranges and the facade's cursors."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from durable._listing import decode_cursor, encode_cursor
from durable.errors import ConfigurationError
from durable.stores._listing import prefix_end
from durable.stores.base import RunRecord

# Storable text: no surrogates (no store can keep them), any other code point.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=6)


@given(prefix=TEXT, run_id=TEXT)
@example(prefix="a\U0010ffff", run_id="b")
@example(prefix="a\U0010ffff", run_id="a\U0010ffff\U0010ffff")
@example(prefix="\ud7ff", run_id="\ue000")
@example(prefix="%", run_id="%x")
def test_prefix_range_holds_exactly_the_prefixed_ids(prefix: str, run_id: str) -> None:
    """prefix <= id < prefix_end(prefix) holds exactly when id starts with prefix."""
    end = prefix_end(prefix)
    in_range = prefix <= run_id and (end is None or run_id < end)
    assert in_range == run_id.startswith(prefix)


def test_a_prefix_of_only_the_last_code_point_has_no_end() -> None:
    """Ids starting with U+10FFFF have no upper bound; the empty prefix neither."""
    assert prefix_end("\U0010ffff\U0010ffff") is None
    assert prefix_end("") is None
    assert prefix_end("ab") == "ac"


def _record(created_at: float, run_id: str) -> RunRecord:
    return RunRecord(
        "app",
        run_id,
        "wf",
        "queued",
        "{}",
        None,
        None,
        None,
        0,
        None,
        0,
        False,
        None,
        created_at,
        created_at,
    )


@given(created_at=st.floats(allow_nan=False, allow_infinity=False), run_id=TEXT)
def test_cursor_round_trips_exactly(created_at: float, run_id: str) -> None:
    """A cursor gives back the exact creation time and run id it was made from."""
    assert decode_cursor(encode_cursor(_record(created_at, run_id))) == (created_at, run_id)


@pytest.mark.parametrize("cursor", ["", "!!", "W10", "WzEsMl0", "WyJ4IiwieSJd", "WzEsMiwzXQ"])
def test_malformed_cursors_are_configuration_errors(cursor: str) -> None:
    """Text that is not a cursor (bad base64, JSON of the wrong shape) is refused clearly."""
    with pytest.raises(ConfigurationError, match="not a cursor returned by list_runs"):
        decode_cursor(cursor)
