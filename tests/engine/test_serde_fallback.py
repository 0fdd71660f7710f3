"""The JSON codec without its fast paths: the public json API, with the same results."""

from __future__ import annotations

import os
import subprocess
import sys

from durable import _fastpaths

_PROGRAM = """
from durable.engine import serde
codec = serde._new_codec()
value = {"a": [1, 2.5, None, True], "b": "é\\u2028", "c": {"d": []}}
text = serde.dumps(value)
print(codec.fast is None, codec.scan is None, text, serde.loads(text) == value)
"""


def _run(disabled: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k != _fastpaths.ENV_VAR}
    if disabled:
        env[_fastpaths.ENV_VAR] = "1"
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_the_switch_gives_the_public_codec_and_the_same_text() -> None:
    """With fast paths off the C encoder and scanner are not used, and the JSON is identical."""
    fast, slow = _run(disabled=False), _run(disabled=True)
    assert fast.startswith("False False ")
    assert slow.startswith("True True ")
    assert fast.split(" ", 2)[2] == slow.split(" ", 2)[2]
    assert fast.endswith(" True")
