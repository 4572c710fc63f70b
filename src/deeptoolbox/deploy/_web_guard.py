"""Guards for the toolbox's web servers, as plain ASGI middleware (FastAPI, Starlette or any
ASGI app): a request size limit and an API key check.

They hold no state beyond their settings, so any server of the toolbox (the inference server,
the apps) wraps its app in them the same way::

    app = ApiKeyCheck(BodySizeLimit(app, max_bytes=4 * 2**20), api_key="s3cret",
                      protected=lambda path: path.startswith("/v1/"))
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from deeptoolbox.errors import RequestError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def send_json(
    send: Send, status: int, body: dict, headers: dict[str, str] | None = None
) -> None:
    """Answer a request with a JSON body (used before the wrapped app sees the request)."""
    payload = json.dumps(body).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


def error_body(field: str, message: str, received: Any = None, expected: Any = None) -> dict:
    """The toolbox's JSON error shape: ``{"error": {"field", "message", "received", "expected"}}``.

    Example:
        >>> error_body("body", "too large", "5 MB", "at most 4 MB")["error"]["field"]
        'body'
    """
    return RequestError(400, field, message, received, expected).body()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _megabytes(size: int) -> str:
    return f"{size:,} bytes ({size / 2**20:.2f} MiB)"


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413, before the app reads them.

    A declared ``Content-Length`` over the limit is refused at once; otherwise the body is
    read up to the limit (chunked uploads too) and handed to the app in one piece.

    Example:
        >>> async def app(scope, receive, send): ...
        >>> BodySizeLimit(app, max_bytes=1024).max_bytes
        1024
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    def _too_large(self, received: str) -> dict:
        return error_body(
            "body", "The request body is larger than this server accepts.",
            received=received, expected=f"at most {_megabytes(self.max_bytes)}",
        )  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                body = error_body("Content-Length", "The Content-Length header is not a number.",
                                  received=declared, expected="a byte count")  # fmt: skip
                await send_json(send, 400, body)
                return
            if int(declared) > self.max_bytes:
                await send_json(send, 413, self._too_large(_megabytes(int(declared))))
                return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await send_json(
                    send, 413, self._too_large(f"more than {_megabytes(self.max_bytes)}")
                )
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def api_key_matches(scope: Scope, api_key: str) -> bool:
    """True when the request carries ``api_key`` as ``Authorization: Bearer KEY`` or
    ``X-API-Key: KEY``; compared in constant time.

    Example:
        >>> scope = {"headers": [(b"x-api-key", b"s3cret")]}
        >>> api_key_matches(scope, "s3cret"), api_key_matches(scope, "other")
        (True, False)
    """
    expected = api_key.encode()
    candidates = []
    authorization = _header(scope, b"authorization")
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            candidates.append(token.strip())
    header_key = _header(scope, b"x-api-key")
    if header_key is not None:
        candidates.append(header_key.strip())
    matched = False
    for candidate in candidates:  # compare every candidate: no early exit that timing reveals
        matched |= hmac.compare_digest(candidate.encode("latin-1"), expected)
    return matched


class ApiKeyCheck:
    """Answer 401 to requests for ``protected`` paths that lack the API key.

    With ``api_key=None`` every request passes. The key is read from
    ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``.

    Example:
        >>> async def app(scope, receive, send): ...
        >>> ApiKeyCheck(app, "s3cret", protected=lambda path: path.startswith("/v1/")).api_key
        's3cret'
    """

    def __init__(
        self, app: ASGIApp, api_key: str | None, *, protected: Callable[[str], bool]
    ) -> None:
        self.app = app
        self.api_key = api_key
        self.protected = protected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self.api_key
            and scope.get("method") != "OPTIONS"  # CORS preflight carries no credentials
            and self.protected(scope.get("path", ""))
            and not api_key_matches(scope, self.api_key)
        ):
            given = (
                "a wrong key"
                if _header(scope, b"authorization") or _header(scope, b"x-api-key")
                else "no key"
            )
            body = error_body("Authorization", "This server needs an API key.", received=given,
                              expected="'Authorization: Bearer KEY' or 'X-API-Key: KEY'")  # fmt: skip
            await send_json(send, 401, body, {"WWW-Authenticate": "Bearer"})
            return
        await self.app(scope, receive, send)
