"""Running python-durable 0.2.3's published samples (tests/compat/v0_2_3) unchanged."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "v0_2_3"


def sample_text(kind: str, name: str) -> str:
    """The text of ``v0_2_3/<kind>/<name>.py.txt``, exactly as published."""
    return (DATA / kind / f"{name}.py.txt").read_text(encoding="utf-8")


async def run_readme_sample(name: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """Execute README sample ``name`` in ``namespace``, top-level ``await`` included.

    The namespace supplies what the README leaves to the reader (``wf``,
    ``httpx``, ``items``, ...); it is returned with the sample's definitions.
    """
    code = compile(
        sample_text("readme", name),
        f"<0.2.3 README: {name}>",
        "exec",
        flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
    )
    namespace.setdefault("__name__", f"readme_{name}")
    result = eval(code, namespace)  # only the test data above
    if inspect.iscoroutine(result):
        await result
    return namespace
