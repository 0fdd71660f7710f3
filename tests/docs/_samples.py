"""Finding the code blocks of the documentation pages, and what each one needs.

A block is a fenced block (three or more backticks, at any indentation) with a
language. ``python`` blocks are programs and are executed; blocks of the
languages in :data:`NOT_PYTHON` (shell sessions, configuration, output) are
shown only. An HTML comment on the line just above a fence says more:

- ``<!-- sample: postgres -->`` / ``<!-- sample: redis -->``: the program
  reads ``DATABASE_URL`` / ``REDIS_URL``, which the runner points at a private
  schema or key prefix on the test servers;
- ``<!-- sample: fragment -->``: not a program of its own (the signature of a
  method, say); it must still compile (``await`` allowed at top level);
- ``<!-- sample: module -->`` on a block with a ``title``: the file is only
  written, for a later block of the page to import or run.

A python block with ``title="name.py"`` is also written to that file, so the
blocks after it on the same page can import it: the blocks of one page run in
order, in one directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"

NOT_PYTHON = frozenset({"console", "bash", "text", "toml", "ini", "json"})
MARKERS = frozenset({"postgres", "redis", "fragment", "module"})

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<ticks>`{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*sample:\s*(?P<names>[\w ,-]+?)\s*-->\s*$")
_TITLE = re.compile(r'title="(?P<title>[^"]+)"')


@dataclass(frozen=True)
class Sample:
    """One fenced block of a page."""

    page: Path
    line: int
    language: str
    code: str
    title: str | None = None
    markers: frozenset[str] = field(default_factory=frozenset)

    @property
    def name(self) -> str:
        where = self.page.relative_to(DOCS if self.page.is_relative_to(DOCS) else DOCS.parent)
        return f"{where}:{self.line}"


def pages() -> list[Path]:
    """Every Markdown page of the site, in a stable order."""
    return sorted(DOCS.rglob("*.md"))


def pages_and_readme() -> list[Path]:
    """The site's pages and the README, whose samples are held to the same rule."""
    return [*pages(), DOCS.parent / "README.md"]


def samples(page: Path) -> list[Sample]:
    """The fenced blocks of ``page``, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Sample] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, ticks, info = opening["indent"], opening["ticks"], opening["info"].strip()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != ticks:
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        if j == len(lines):
            raise AssertionError(f"{page}:{i + 1}: code block never closed")
        marker = _MARKER.match(lines[i - 1]) if i > 0 else None
        markers = frozenset(
            name.strip() for name in (marker["names"].split(",") if marker else []) if name.strip()
        )
        unknown = markers - MARKERS
        if unknown:
            raise AssertionError(f"{page}:{i + 1}: unknown sample markers {sorted(unknown)}")
        title = _TITLE.search(info)
        found.append(
            Sample(
                page=page,
                line=i + 1,
                language=info.split()[0] if info else "",
                code="\n".join(body) + "\n",
                title=title["title"] if title else None,
                markers=markers,
            )
        )
        i = j + 1
    return found
