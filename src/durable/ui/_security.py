"""Who may see the pages and who may act: the ``auth`` hook and CSRF tokens.

CSRF uses a double-submit token: a random value in a ``SameSite=Strict``
cookie that every action form repeats in a hidden field. A page from another
site can make the browser send the cookie (not with SameSite=Strict, and not
from modern browsers at all) but can never read it, so it cannot fill in the
field. A request whose ``Origin`` names another host is refused as well.
"""

from __future__ import annotations

import hmac
import inspect
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

AuthHook = Callable[[Request], "bool | Awaitable[bool]"]
"""``auth(request)``: True to allow the request, False to refuse it with 403.

It may be a coroutine function, and it may raise
:class:`starlette.exceptions.HTTPException` to answer otherwise (for
instance 401 with a ``WWW-Authenticate`` header).
"""

CSRF_COOKIE = "durable_csrf"
CSRF_FIELD = "csrf_token"


async def allowed(auth: AuthHook | None, request: Request) -> bool:
    """Whether ``auth`` lets ``request`` through (no hook: everyone)."""
    if auth is None:
        return True
    verdict = auth(request)
    if inspect.isawaitable(verdict):
        verdict = await verdict
    return verdict is True


def csrf_token(request: Request) -> str:
    """The token of this browser: the cookie's, or a new one to set."""
    token = request.cookies.get(CSRF_COOKIE)
    if token and len(token) == 43:
        return token
    return secrets.token_urlsafe(32)


def set_csrf_cookie(response: Response, request: Request, token: str) -> None:
    """Give the browser its token when it has none yet."""
    if request.cookies.get(CSRF_COOKIE) == token:
        return
    response.set_cookie(
        CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=request.scope.get("root_path") or "/",
    )


class Flash:
    """Messages carried to the page an action redirects to, signed by this app.

    The text travels in the query string; the signature keeps a link crafted
    elsewhere from making the UI display words it never said.
    """

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def _sign(self, kind: str, text: str) -> str:
        digest = hmac.new(self._key, f"{kind}\0{text}".encode(), "sha256").hexdigest()
        return digest[:32]

    def query(self, kind: str, text: str) -> dict[str, str]:
        """The query parameters that show ``text`` as a ``kind`` message."""
        return {kind: text, "sig": self._sign(kind, text)}

    def read(self, request: Request, kind: str) -> str | None:
        """The ``kind`` message of this request, if it carries a good signature."""
        text = request.query_params.get(kind)
        signature = request.query_params.get("sig", "")
        if text is None or not hmac.compare_digest(signature, self._sign(kind, text)):
            return None
        return text


def csrf_problem(request: Request, submitted: object) -> str | None:
    """Why this POST is refused, or None when its token and origin are good."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        return f"cross-site request from {origin} refused"
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie:
        return "missing CSRF cookie: reload the page and try again"
    if not isinstance(submitted, str) or not hmac.compare_digest(cookie, submitted):
        return "CSRF token mismatch: reload the page and try again"
    return None
