"""Which app and store a command works on, and how its failures become exit codes."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import click

from durable import stores
from durable._workflow import Workflow
from durable.errors import ConfigurationError, DurableError, RunIdError, RunNotFoundError

__all__ = ["Refused", "Target", "load_app", "run"]

T = TypeVar("T")

# Exit statuses: click itself exits 2 for usage errors.
EXIT_REFUSED = 1


class Refused(click.ClickException):
    """A run that is not there, or an action the store's state does not allow: exit 1."""

    exit_code = EXIT_REFUSED


@dataclass(frozen=True, slots=True)
class Target:
    """The ``--db`` and ``--app`` options every command shares."""

    db: str | None
    app: str | None

    @property
    def loads_code(self) -> bool:
        """True when ``--app`` is ``module:attr``: the user's Workflow is imported."""
        return self.app is not None and ":" in self.app

    def workflow(self) -> Workflow:
        """The app to act on: the user's Workflow, or one built from its name over ``--db``."""
        if not self.app:
            raise click.UsageError(
                "name the app with --app NAME (or module:attr to load your Workflow) or DURABLE_APP"
            )
        if self.loads_code:
            if self.db is not None:
                raise click.UsageError(
                    f"--app {self.app} brings its Workflow's own store: drop --db (or DURABLE_DB)"
                )
            return load_app(self.app)
        if self.db is None:
            raise click.UsageError("name the store with --db URL or DURABLE_DB")
        try:
            return Workflow(self.app, db=stores.from_url(self.db))
        except ConfigurationError as exc:
            raise click.UsageError(str(exc)) from None

    def user_workflow(self, action: str) -> Workflow:
        """The user's Workflow, which ``action`` needs to execute workflow code."""
        if not self.loads_code:
            raise click.UsageError(f"{action} runs your workflow code: pass --app module:attr")
        return self.workflow()


def load_app(spec: str) -> Workflow:
    """The Workflow named by ``module:attr``, importing the module (cwd on the path)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise Refused(f"expected module:attr (e.g. shop.app:wf), got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise Refused(f"cannot import {module_name!r}: {exc}") from None
    app = getattr(module, attr, None)
    if app is None:
        raise Refused(f"module {module_name!r} has no attribute {attr!r}")
    if not isinstance(app, Workflow):
        raise Refused(f"{spec!r} is {type(app).__name__}, not a durable.Workflow")
    return app


def run(
    target: Target, action: Callable[[Workflow], Awaitable[T]], *, needs_code: str | None = None
) -> T:
    """Run ``action`` on the target's app in a fresh event loop, then close the app.

    ``needs_code`` names an action that executes workflow code: the app must
    then be the user's Workflow (``--app module:attr``). Library errors become
    exit codes: an unknown run or a refused action 1, a bad option 2.
    """
    wf = target.workflow() if needs_code is None else target.user_workflow(needs_code)

    async def main() -> T:
        try:
            return await action(wf)
        finally:
            await wf.close()

    try:
        return asyncio.run(main())
    except RunNotFoundError as exc:
        raise Refused(str(exc)) from None
    except (ConfigurationError, RunIdError) as exc:
        raise click.UsageError(str(exc)) from None
    except DurableError as exc:
        raise Refused(f"{type(exc).__name__}: {exc}") from None
    except NotImplementedError as exc:  # a store without that capability
        raise Refused(str(exc)) from None
