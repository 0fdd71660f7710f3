"""MkDocs hooks: show the Sphinx cross-reference roles of our docstrings as plain code.

The docstrings use ``:class:`~durable.errors.ConfigurationError``` so that they
read well in editors; mkdocstrings renders the role's name literally. This
drops the role and, for a ``~`` target, keeps only its last name, as Sphinx
would; reST's ``text::`` before a literal block becomes ``text:``.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:class|func|meth|exc|attr|mod|data|obj):(?=<code>)")
_SHORT = re.compile(r"<code>~(?:[\w]+\.)*(\w+)</code>")
# reST's "text::" before a literal block reads as "text:".
_LITERAL = re.compile(r"::</p>")


def on_page_content(html: str, **_: Any) -> str:
    return _LITERAL.sub(":</p>", _SHORT.sub(r"<code>\1</code>", _ROLE.sub("", html)))
