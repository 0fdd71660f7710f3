"""The sample runner itself: what it finds in a page, and that a broken sample fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.docs import _samples
from tests.docs._samples import Sample, samples
from tests.docs.test_doc_samples import _run

PAGE = """# A page

Text, then a program:

```python
print("one")
```

<!-- sample: postgres -->
```python title="shop.py"
import os
```

!!! note
    ```console
    $ durable runs list
    ```

<!-- sample: fragment -->
````python
async def signature(self) -> None: ...
````
"""


@pytest.fixture
def docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(_samples, "DOCS", tmp_path)
    return tmp_path


def test_blocks_languages_titles_and_markers(docs: Path) -> None:
    page = docs / "page.md"
    page.write_text(PAGE, encoding="utf-8")
    found = samples(page)
    assert [(s.language, s.title, sorted(s.markers)) for s in found] == [
        ("python", None, []),
        ("python", "shop.py", ["postgres"]),
        ("console", None, []),
        ("python", None, ["fragment"]),
    ]
    assert found[0].code == 'print("one")\n'
    assert found[2].code == "$ durable runs list\n"  # indented under an admonition
    assert found[1].name == "page.md:10"


def test_an_unknown_marker_is_refused(docs: Path) -> None:
    page = docs / "page.md"
    page.write_text("<!-- sample: postgress -->\n```python\npass\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="unknown sample markers"):
        samples(page)


def test_an_unclosed_block_is_refused(docs: Path) -> None:
    page = docs / "page.md"
    page.write_text("```python\npass\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="never closed"):
        samples(page)


def test_a_failing_sample_fails_with_its_output(tmp_path: Path) -> None:
    sample = Sample(
        page=_samples.DOCS / "page.md",
        line=3,
        language="python",
        code="print('before')\nassert 1 + 1 == 3, 'arithmetic'\n",
    )
    with pytest.raises(AssertionError, match=r"(?s)exited with 1.*before.*arithmetic"):
        _run(sample, tmp_path, {"PATH": "/usr/bin:/bin"})


def test_a_passing_sample_passes(tmp_path: Path) -> None:
    sample = Sample(
        page=_samples.DOCS / "page.md", line=3, language="python", code="assert 1 + 1 == 2\n"
    )
    _run(sample, tmp_path, {"PATH": "/usr/bin:/bin"})
    assert (tmp_path / "sample_3.py").read_text(encoding="utf-8") == sample.code
