"""Run ids: ``id=`` templates checked at decoration, resolved at call time, validated."""

from __future__ import annotations

import inspect
import string
from collections.abc import Mapping
from typing import Any

from durable.errors import ConfigurationError, RunIdError

MAX_RUN_ID_LENGTH = 1000


def validate_run_id(run_id: object, *, workflow: str | None = None, app: str | None = None) -> str:
    """Return ``run_id`` if acceptable, else raise RunIdError naming the workflow (or app)."""
    where = f"workflow {workflow!r}" if workflow is not None else f"app {app!r}"
    if not isinstance(run_id, str):
        raise RunIdError(f"{where}: run id must be a string, got {type(run_id).__name__}")
    if not run_id:
        raise RunIdError(f"{where}: run id is empty")
    if len(run_id) > MAX_RUN_ID_LENGTH:
        raise RunIdError(
            f"{where}: run id is {len(run_id)} characters long, "
            f"over the limit of {MAX_RUN_ID_LENGTH}"
        )
    import unicodedata  # on first use: import durable stays cheap

    for ch in run_id:
        if unicodedata.category(ch) == "Cc":
            raise RunIdError(
                f"{where}: run id {run_id[:80]!r} contains the control character {ch!r}"
            )
        if unicodedata.category(ch) == "Cs":
            raise RunIdError(f"{where}: run id {run_id[:80]!r} contains a lone surrogate")
    return run_id


class IdTemplate:
    """A ``str.format`` template over the workflow function's parameters."""

    def __init__(self, template: str, signature: inspect.Signature, *, workflow: str) -> None:
        if not isinstance(template, str) or not template:
            raise ConfigurationError(
                f"workflow {workflow!r}: id= must be a non-empty template string, got {template!r}"
            )
        available = [
            name
            for name, p in signature.parameters.items()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        except ValueError as exc:
            raise ConfigurationError(
                f"workflow {workflow!r}: id template {template!r} is malformed: {exc}"
            ) from exc
        for field in fields:
            root = field.split(".", 1)[0].split("[", 1)[0]
            if root not in available:
                shown = ", ".join(available) or "none"
                why = (
                    "positional placeholders are not supported"
                    if not root or root.isdigit()
                    else f"{root!r} is not a parameter"
                )
                raise ConfigurationError(
                    f"workflow {workflow!r}: id template {template!r} uses placeholder "
                    f"{{{field}}} but {why}; available parameters: {shown}"
                )
        self.template = template
        self.workflow = workflow

    def resolve(self, arguments: Mapping[str, Any]) -> str:
        try:
            run_id = self.template.format_map(arguments)
        except (AttributeError, KeyError, IndexError, ValueError, TypeError) as exc:
            raise RunIdError(
                f"workflow {self.workflow!r}: could not resolve id template "
                f"{self.template!r}: {exc!r}"
            ) from exc
        return validate_run_id(run_id, workflow=self.workflow)


def derived_run_id(workflow: str, inputs_json: str) -> str:
    """A stable run id from the workflow name and its JSON-encoded arguments."""
    import hashlib  # on first use: most workflows have an id template

    digest = hashlib.sha256(inputs_json.encode("utf-8")).hexdigest()[:20]
    return f"{workflow}-{digest}"
