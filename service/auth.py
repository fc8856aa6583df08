"""The API's gate: key, rate limit and body size, settled before any route reads the body.

A pure ASGI middleware, because FastAPI reads a request's body before its dependencies run:
a dependency could only check the key of a body already read. The gate answers 401 (no or
unknown key, non-ASCII included), 403 (a read-only key on a write), 429 with ``Retry-After``
(the key's token bucket is empty) and 413 (a body over the limit, announced by its
``Content-Length`` or found while it streams in chunks: the route never gets more than the
limit, and the gate stops reading there).
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Callable
from enum import Enum

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_KEY_HEADER = "X-API-Key"
# Liveness, readiness, metrics and the API's own documentation need no key.
OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"}
)
READ_METHODS = frozenset({"GET", "HEAD"})


class Access(Enum):
    READ = "read"
    READ_WRITE = "read-write"


class KeyRing:
    """The accepted keys and what each may do; compared in constant time, as bytes."""

    def __init__(self, read_write: frozenset[str], read_only: frozenset[str]) -> None:
        self._keys = [(k.encode(), Access.READ_WRITE) for k in read_write] + [
            (k.encode(), Access.READ) for k in read_only
        ]

    def access(self, presented: bytes) -> Access | None:
        """What ``presented`` may do, or None if it is no key of ours.

        Bytes, not str: ``secrets.compare_digest`` raises on non-ASCII str (a 500 before)."""
        found = None
        for key, access in self._keys:  # no early exit: the time does not tell which matched
            if secrets.compare_digest(presented, key):
                found = access
        return found


class RateLimiter:
    """A token bucket per key, in memory (one per process; keys are a fixed, known set)."""

    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[bytes, tuple[float, float]] = {}  # key -> (tokens, at)

    def wait_s(self, key: bytes) -> float:
        """Take a token for ``key``: 0 if granted, else seconds until one is available.

        Called from the event loop only, so no lock: nothing awaits in between."""
        now = self._clock()
        tokens, at = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self._rate


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"body over {limit} bytes")


class ApiGate:
    """Pure ASGI middleware in front of the routes (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, *, keys: KeyRing, limiter: RateLimiter, max_body_bytes: int
    ) -> None:
        self.app = app
        self._keys = keys
        self._limiter = limiter
        self._max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])  # lower-case names; the last of repeated headers
        presented = headers.get(API_KEY_HEADER.lower().encode())
        access = None if presented is None else self._keys.access(presented)
        if access is None:
            await _answer(send, 401, f"missing or unknown {API_KEY_HEADER} header")
            return
        if access is Access.READ and scope["method"] not in READ_METHODS:
            await _answer(send, 403, f"this {API_KEY_HEADER} is read-only")
            return
        wait_s = self._limiter.wait_s(presented)
        if wait_s > 0:
            retry_after = str(math.ceil(wait_s))
            await _answer(
                send, 429, "rate limit of this key exceeded", {b"retry-after": retry_after}
            )
            return
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self._max_body:
            await _answer(send, 413, f"body over {self._max_body} bytes")
            return
        await self._forward(scope, receive, send)

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        started = False

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max_body:
                    raise BodyTooLarge(self._max_body)  # FastAPI answers it as a 413
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except BodyTooLarge as exc:  # a route outside FastAPI's handling let it through
            if started:
                raise
            await _answer(send, 413, exc.detail)


async def _answer(
    send: Send, status: int, detail: str, extra_headers: dict[bytes, str] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name, value.encode()) for name, value in (extra_headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
