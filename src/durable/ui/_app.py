"""The Starlette application: the pages and the actions."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from durable.errors import ConfigurationError, DurableError, RunIdError, RunNotFoundError
from durable.ui import _format, _security
from durable.ui._source import PAGE_SIZE, SCAN_LIMIT, RunFilter, Source

if TYPE_CHECKING:
    from durable._workflow import Workflow

logger = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]

# The time filter's choices: label and how far back.
SINCE_CHOICES: dict[str, timedelta] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
ACTIONS = ("cancel", "resume", "retry", "signal", "delete")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("durable.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(
        duration=_format.duration,
        timestamp=_format.timestamp,
        ago=_format.ago,
        pretty_json=_format.pretty_json,
        path_part=_format.path_part,
    )
    return env


class UI:
    """The pages and actions of one app, with their options."""

    def __init__(self, wf: Workflow, auth: _security.AuthHook | None, read_only: bool) -> None:
        self.source = Source(wf)
        self.auth = auth
        self.read_only = read_only
        self.templates = _environment()
        self.flash = _security.Flash()

    # -- plumbing ------------------------------------------------------------------

    def guarded(self, endpoint: Endpoint) -> Endpoint:
        """``endpoint`` behind the auth hook."""

        async def guarded_endpoint(request: Request) -> Response:
            if not await _security.allowed(self.auth, request):
                return self.render(request, "error.html", {"message": "Access denied."}, 403)
            return await endpoint(request)

        guarded_endpoint.__name__ = endpoint.__name__
        return guarded_endpoint

    def render(
        self, request: Request, template: str, context: dict[str, Any], status: int = 200
    ) -> HTMLResponse:
        token = _security.csrf_token(request)
        base = request.scope.get("root_path", "").rstrip("/")
        html = self.templates.get_template(template).render(
            base=base,
            app_name=self.source.wf.name,
            read_only=self.read_only,
            csrf_field=_security.CSRF_FIELD,
            csrf_token=token,
            notice=self.flash.read(request, "notice"),
            problem=self.flash.read(request, "problem"),
            page=template.removesuffix(".html"),
            **context,
        )
        response = HTMLResponse(html, status_code=status)
        _security.set_csrf_cookie(response, request, token)
        response.headers["Cache-Control"] = "no-store"
        return response

    # -- pages ---------------------------------------------------------------------

    async def runs_page(self, request: Request) -> Response:
        params = request.query_params
        status = params.get("status") or None
        if status is not None and status not in self.source.statuses:
            raise HTTPException(400, f"unknown status {status!r}")
        since_key = params.get("since") or None
        if since_key is not None and since_key not in SINCE_CHOICES:
            raise HTTPException(400, f"unknown time range {since_key!r}")
        limit = _int(params.get("limit"), PAGE_SIZE)
        query = RunFilter(
            status=status,
            workflow=params.get("workflow") or None,
            queue=params.get("queue") or None,
            since=None if since_key is None else datetime.now(UTC) - SINCE_CHOICES[since_key],
            id_prefix=params.get("q") or None,
            cursor=params.get("cursor") or None,
            limit=max(1, min(limit, SCAN_LIMIT)),
        )
        try:
            page = await self.source.runs(query)
        except ConfigurationError as exc:  # a cursor or filter the API refuses
            raise HTTPException(400, str(exc)) from None
        kept = {
            key: value
            for key, value in params.items()
            if key in ("status", "workflow", "queue", "since", "q") and value
        }
        next_url = None
        if page.next_cursor is not None:
            size = {} if limit == PAGE_SIZE else {"limit": limit}
            next_url = "?" + urlencode({**kept, **size, "cursor": page.next_cursor})
        return self.render(
            request,
            "runs.html",
            {
                "runs": page.runs,
                "filters": kept,
                "statuses": self.source.statuses,
                "since_choices": list(SINCE_CHOICES),
                "next_url": next_url,
                "first_url": "?" + urlencode(kept) if params.get("cursor") else None,
            },
        )

    async def run_page(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            run = await self.source.run(run_id)
        except (RunNotFoundError, RunIdError):
            return self.render(
                request, "error.html", {"message": f"There is no run {run_id!r}."}, 404
            )
        children = await self.source.children(run)
        signals = [step for step in run.steps if step.task.startswith("durable.signal:")]
        return self.render(
            request,
            "run.html",
            {
                "run": run,
                "bars": _format.timeline(run),
                "children": children,
                "signals": signals,
            },
        )

    async def queues_page(self, request: Request) -> Response:
        workers = await self.source.workers()
        try:
            queues = await self.source.queues()
            unsupported = None
        except NotImplementedError as exc:
            queues, unsupported = [], str(exc)
        return self.render(
            request,
            "queues.html",
            {"queues": queues, "workers": workers, "unsupported": unsupported},
        )

    async def schedules_page(self, request: Request) -> Response:
        now = datetime.now(UTC)
        schedules = [(schedule, schedule.next_tick(now)) for schedule in self.source.wf.schedules()]
        return self.render(request, "schedules.html", {"schedules": schedules})

    # -- actions -------------------------------------------------------------------

    async def action(self, request: Request) -> Response:
        name = request.path_params["action"]
        if name not in ACTIONS:
            return self.render(request, "error.html", {"message": f"No action {name!r}."}, 404)
        if self.read_only:
            return self.render(request, "error.html", {"message": "This UI is read-only."}, 403)
        form = await request.form()
        problem = _security.csrf_problem(request, form.get(_security.CSRF_FIELD))
        if problem is not None:
            return self.render(request, "error.html", {"message": problem}, 403)
        run_id = form.get("run_id")
        if not isinstance(run_id, str) or not run_id:
            return self.render(request, "error.html", {"message": "No run id given."}, 400)
        base = request.scope.get("root_path", "").rstrip("/")
        run_url = f"{base}/runs/{_format.path_part(run_id)}"
        try:
            notice = await self._perform(name, run_id, form)
        except RunNotFoundError:
            return self.render(
                request, "error.html", {"message": f"There is no run {run_id!r}."}, 404
            )
        except (DurableError, ValueError, NotImplementedError) as exc:
            logger.info("UI action %s on run %r refused: %s", name, run_id, exc)
            return RedirectResponse(
                f"{run_url}?{urlencode(self.flash.query('problem', str(exc)))}", 303
            )
        if name == "delete":
            return RedirectResponse(f"{base}/?{urlencode(self.flash.query('notice', notice))}", 303)
        return RedirectResponse(f"{run_url}?{urlencode(self.flash.query('notice', notice))}", 303)

    async def _perform(self, name: str, run_id: str, form: Any) -> str:
        wf = self.source.wf
        if name == "cancel":
            await wf.cancel(run_id)
            return "Cancel requested."
        if name == "signal":
            signal_name = str(form.get("name") or "")
            text = str(form.get("payload") or "").strip()
            try:
                payload = json.loads(text) if text else None
            except ValueError as exc:
                raise ValueError(f"the payload is not JSON: {exc}") from exc
            await wf.send_signal(run_id, signal_name, payload)
            return f"Signal {signal_name!r} sent."
        if name == "delete":
            await wf.delete_run(run_id)
            return f"Run {run_id!r} deleted."
        # resume and retry: hand the run to a worker.
        await wf.requeue(run_id)
        return "Run handed to a worker." if name == "resume" else "Retry handed to a worker."

    async def http_error(self, request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):
            raise exc
        response = self.render(request, "error.html", {"message": exc.detail}, exc.status_code)
        response.headers.update(exc.headers or {})
        return response


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        raise HTTPException(400, f"not a number: {text!r}") from None


def build(wf: Workflow, auth: _security.AuthHook | None, read_only: bool) -> Starlette:
    """The ASGI app of ``wf``'s pages."""
    ui = UI(wf, auth, read_only)
    static = StaticFiles(directory=str(resources.files("durable.ui") / "static"))
    routes = [
        Route("/", ui.guarded(ui.runs_page), methods=["GET"]),
        Route("/runs/{run_id:path}", ui.guarded(ui.run_page), methods=["GET"]),
        Route("/queues", ui.guarded(ui.queues_page), methods=["GET"]),
        Route("/schedules", ui.guarded(ui.schedules_page), methods=["GET"]),
        Route("/actions/{action}", ui.guarded(ui.action), methods=["POST"]),
        Mount("/static", static, name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: ui.http_error})
