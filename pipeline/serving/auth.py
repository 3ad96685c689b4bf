"""Who may use the server. Started with a token (`--token`, or `PIPELINE_SERVE_TOKEN`, which other users of the
machine cannot read from its process list), every route but `GET /health` asks for it: a client sends
`Authorization: Bearer <token>`, a browser enters it once in the page's login form, which sets a cookie. Anything
else is a 401 that says how to send it (for the page: the login form), before any of the body is read. Tokens are
compared with `secrets.compare_digest`, in a time that does not depend on how much of them matches.

Without a token the server is open to whoever reaches it, so `pipeline serve` refuses to listen on anything but a
loopback address without one, unless `--insecure` says so, and then warns (`exposure`).
"""

import ipaddress
import re
import secrets

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request, cookie_parser
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from pipeline.core.errors import PipelineError
from pipeline.serving import TOKEN_ENV
from pipeline.serving.page import login_page
from pipeline.serving.uploads import Refused, limited

OPEN = "/health"  # the one route without the token: a load balancer's or a script's is-it-up check
LOGIN, TOKEN_FIELD, COOKIE = "/login", "token", "pipeline_serve"
PAGES = ("/", LOGIN)  # where a browser goes: a 401 there is the login page, elsewhere JSON
LOGIN_BYTES = 4096  # a login form's body holds one token
MIN_TOKEN = 16
TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~+/=-]+")  # what a Bearer token may hold (RFC 6750's b64token)
SEND = (
    f"send the header 'Authorization: Bearer <token>' with the token the server was started with (--token or "
    f"{TOKEN_ENV}), e.g. curl -H \"Authorization: Bearer ${TOKEN_ENV}\" -F file=@photo.jpg URL/predict"
)


def is_loopback(host: str) -> bool:
    """Whether `host` is an address only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name: it may resolve to any interface
        return False


def exposure(host: str, token: str | None, insecure: bool) -> str:
    """The warning to print before serving on `host` with `token` (None: without one), "" for none; a PipelineError
    for a token too weak to guard a server, or for a non-loopback `host` without one unless `insecure`."""
    if token is not None:
        _check_token(token)
        return ""
    if is_loopback(host):
        return ""
    if not insecure:
        raise PipelineError(
            f"--host {host}: without a token anyone who reaches this machine could use the server; give it one, e.g. "
            f"export {TOKEN_ENV}={secrets.token_urlsafe(24)} (or --token), and clients send 'Authorization: Bearer "
            "<token>'; --insecure serves without one"
        )
    return (
        f"WARNING: serving on {host} without a token (--insecure): anyone who reaches this machine can use the "
        f"server; set {TOKEN_ENV} to require one"
    )


def _check_token(token: str) -> None:
    if len(token) < MIN_TOKEN or not TOKEN_CHARS.fullmatch(token):
        raise PipelineError(
            f"--token / {TOKEN_ENV}: give at least {MIN_TOKEN} letters, digits or -._~+/= characters (a short one "
            f"can be guessed), e.g. {secrets.token_urlsafe(24)}"
        )


class TokenGuard:
    """ASGI middleware: passes a request on to `app` when it carries `token` (as a Bearer header or the login's
    cookie) or asks for `/health`; answers the login form's post; refuses the rest with a 401."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self._token = app, token.encode()
        # The cookie holds a random key of this server's run, never the token itself.
        self._session = secrets.token_urlsafe(32)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer it here."""
        if scope["type"] != "http" or scope["path"] == OPEN or self._carries_token(Headers(scope=scope)):
            await self.app(scope, receive, send)
            return
        if scope["path"] == LOGIN and scope["method"] == "POST":
            response = await self._login(Request(scope, receive))
        else:
            response = self._refusal(scope)
        await response(scope, receive, send)

    def _carries_token(self, headers: Headers) -> bool:
        scheme, _, given = headers.get("authorization", "").partition(" ")
        bearer = secrets.compare_digest(given.strip().encode(), self._token) and scheme.lower() == "bearer"
        cookie = cookie_parser(headers.get("cookie", "")).get(COOKIE, "")
        return secrets.compare_digest(cookie.encode(), self._session.encode()) or bearer

    async def _login(self, request: Request) -> Response:
        """Back to the page with the cookie set, for the right token; the login page again, for anything else."""
        try:
            form = await Request(request.scope, limited(request.receive, LOGIN_BYTES)).form(max_files=0, max_fields=1)
        except (HTTPException, Refused):
            return HTMLResponse(login_page(LOGIN, TOKEN_FIELD, "send the token alone"), 401, {"Connection": "close"})
        given = form.get(TOKEN_FIELD)
        if not isinstance(given, str) or not secrets.compare_digest(given.encode(), self._token):
            return HTMLResponse(login_page(LOGIN, TOKEN_FIELD, "wrong token; try again"), 401)
        response = RedirectResponse("/", 303)
        response.set_cookie(COOKIE, self._session, httponly=True, samesite="strict")
        return response

    @staticmethod
    def _refusal(scope: Scope) -> Response:
        """401: the login page where a browser goes, else JSON saying how to send the token. The body is not read,
        so the connection is closed after the answer."""
        if scope["path"] in PAGES:
            return HTMLResponse(login_page(LOGIN, TOKEN_FIELD), 401, {"Connection": "close"})
        given = "authorization" in Headers(scope=scope)
        challenge = 'Bearer realm="pipeline serve"' + (', error="invalid_token"' if given else "")
        detail = ("wrong token: " if given else "this server needs its token: ") + SEND
        return JSONResponse({"detail": detail}, 401, {"WWW-Authenticate": challenge, "Connection": "close"})
