"""Every code block of the documentation is executed: a sample that stops working fails here.

The python blocks of a page run in order, each as its own program (``python
-W error``), in one temporary directory per page, so that a block may import a
module an earlier block of the page wrote (``title="shop.py"``). Blocks marked
``postgres`` or ``redis`` get ``DATABASE_URL`` / ``REDIS_URL`` pointing at a
private schema or key prefix on the test servers; without a server those
blocks are skipped (the page's others still run) and the test reports the
skip, or fails when ``DURABLE_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import ast
import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests import _services
from tests.docs._samples import DOCS, NOT_PYTHON, Sample, pages, pages_and_readme, samples

ROOT = DOCS.parent
_TIMEOUT = 120


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_the_site_has_pages() -> None:
    assert len(pages()) >= 20
    assert sum(len(samples(page)) for page in pages()) >= 50


@pytest.mark.parametrize("page", pages_and_readme(), ids=_page_id)
def test_every_block_is_python_or_marked_as_not_python(page: Path) -> None:
    for sample in samples(page):
        assert sample.language in {"python"} | NOT_PYTHON, (
            f"{sample.name}: a code block needs a language: python (executed) "
            f"or one of {sorted(NOT_PYTHON)}"
        )
        if sample.language != "python":
            assert not sample.markers, f"{sample.name}: only python blocks take markers"


async def _service_env(
    needed: set[str], cleanups: list[object], missing: dict[str, str]
) -> dict[str, str]:
    """The variables that point samples at the test servers; ``missing`` gets the absent ones."""
    env: dict[str, str] = {}
    if "postgres" in needed:
        try:
            dsn = await _services.postgres_dsn()
        except pytest.skip.Exception as skipped:
            missing["postgres"] = str(skipped)
        else:
            schema = _services.unique_name("docs")
            cleanups.append(lambda: _services.drop_postgres_schema(dsn, schema))
            separator = "&" if "?" in dsn else "?"
            env["DATABASE_URL"] = f"{dsn}{separator}schema={schema}"
    if "redis" in needed:
        try:
            url = await _services.redis_url()
        except pytest.skip.Exception as skipped:
            missing["redis"] = str(skipped)
        else:
            prefix = _services.unique_name("docs")
            cleanups.append(lambda: _services.delete_redis_prefix(url, prefix))
            separator = "&" if "?" in url else "?"
            env["REDIS_URL"] = f"{url}{separator}prefix={prefix}"
    return env


def _run(sample: Sample, workdir: Path, env: dict[str, str]) -> None:
    script = workdir / (sample.title or f"sample_{sample.line}.py")
    script.write_text(sample.code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-W", "error", script.name],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, (
        f"{sample.name} exited with {done.returncode}\n--- code ---\n{sample.code}"
        f"--- stdout ---\n{done.stdout}--- stderr ---\n{done.stderr}"
    )


def _check_module_is_used(module: Sample, page_samples: list[Sample]) -> None:
    assert module.title is not None, f"{module.name}: a module block needs a title"
    stem = module.title.removesuffix(".py")
    later = [sample for sample in page_samples if sample.line > module.line]
    assert any(stem in sample.code for sample in later), (
        f"{module.name}: no later block of the page uses {module.title}"
    )


def _pages_with_programs() -> list[Path]:
    return [
        page
        for page in pages_and_readme()
        if any(sample.language == "python" for sample in samples(page))
    ]


@pytest.mark.parametrize("page", _pages_with_programs(), ids=_page_id)
async def test_page_samples_run(page: Path, tmp_path: Path) -> None:
    python = [sample for sample in samples(page) if sample.language == "python"]
    needed = {marker for sample in python for marker in sample.markers} & {"postgres", "redis"}
    cleanups: list[object] = []
    missing: dict[str, str] = {}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT / "src")])
    env.update(await _service_env(needed, cleanups, missing))
    try:
        for sample in python:
            if sample.markers & missing.keys():
                continue  # the other blocks of the page still run
            if "fragment" in sample.markers:
                # Fragments may await at top level, as in `python -m asyncio`.
                compile(sample.code, sample.name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
                continue
            if "module" in sample.markers:
                _check_module_is_used(sample, python)
                (tmp_path / str(sample.title)).write_text(sample.code, encoding="utf-8")
                continue
            await asyncio.to_thread(_run, sample, tmp_path, env)
    finally:
        for cleanup in cleanups:
            await cleanup()  # type: ignore[operator]
    if missing:
        pytest.skip("; ".join(missing.values()) + " (the page's other blocks ran)")
