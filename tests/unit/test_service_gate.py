"""Hostile requests at the ASGI level: each gets its answer, and nothing reaches Kafka.

Driven through the raw ASGI interface (not an HTTP client) so a test controls what a client
can send: non-ASCII header bytes, a chunked body with no Content-Length, and it counts how
much of a body the app pulled.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from service.app import create_app
from service.auth import RateLimiter
from service.recommender import PopularityRecommender
from tests.support import CATALOG, RecordingPublisher, make_listens
from tunelake.settings import Settings

LIMIT = 64 * 1024
RW, RO = b"rw-key", b"ro-key"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def publisher():
    return RecordingPublisher()


@pytest.fixture
def app(publisher):
    settings = Settings(
        _env_file=None,
        api_keys=RW.decode(),
        api_read_keys=RO.decode(),
        api_rate_per_second=2.0,
        api_rate_burst=3,
        api_max_body_bytes=LIMIT,
    )
    return create_app(
        settings, publisher=publisher, recommender=PopularityRecommender(lambda: CATALOG)
    )


def call(app, method: str, path: str, headers: list[tuple[bytes, bytes]], chunks=(b"",)):
    """One request through ``app``; returns (status, headers, body, bytes of body pulled)."""
    pulled = 0
    pending = list(chunks)

    async def receive():
        nonlocal pulled
        if not pending:
            await asyncio.sleep(3600)  # a client that sends nothing more
        chunk = pending.pop(0)
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    sent = []

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"test"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=10))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body, pulled


def detail(body: bytes):
    return json.loads(body)["detail"]


def post_listens(app, headers, chunks):
    return call(
        app, "POST", "/users/u/listens", [(b"content-type", b"application/json"), *headers], chunks
    )


BODY = json.dumps(make_listens(2)).encode()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([], 401),  # no key
        ([(b"x-api-key", "clé-ü".encode())], 401),  # non-ASCII (UTF-8 bytes)
        ([(b"x-api-key", b"\xff\xfe")], 401),  # not even UTF-8
        ([(b"x-api-key", b"rw-key-but-longer")], 401),
        ([(b"x-api-key", RO)], 403),  # read-only key on a write
    ],
    ids=["no-key", "non-ascii", "non-utf8", "unknown", "read-only"],
)
def test_bad_keys_are_refused_before_the_body_is_read(app, publisher, headers, status):
    code, _, body, pulled = post_listens(app, headers, [BODY])
    assert code == status
    assert "X-API-Key" in detail(body)
    assert pulled == 0
    assert publisher.sent == []


def test_a_declared_oversize_body_is_413_unread(app, publisher):
    headers = [(b"x-api-key", RW), (b"content-length", str(LIMIT + 1).encode())]
    code, _, body, pulled = post_listens(app, headers, [b"x" * (LIMIT + 1)])
    assert code == 413
    assert str(LIMIT) in detail(body)
    assert pulled == 0
    assert publisher.sent == []


def test_a_chunked_oversize_body_is_413_after_at_most_the_limit(app, publisher):
    chunk = 4096
    chunks = [b"x" * chunk] * (4 * LIMIT // chunk)  # 4x the limit, no Content-Length
    code, _, body, pulled = post_listens(app, [(b"x-api-key", RW)], chunks)
    assert code == 413
    assert str(LIMIT) in detail(body)
    # The gate stops at the chunk that crosses the limit.
    assert LIMIT < pulled <= LIMIT + chunk
    assert publisher.sent == []


def test_a_chunked_body_under_the_limit_is_taken(app, publisher):
    chunks = [BODY[:10], BODY[10:50], BODY[50:]]
    code, _, body, pulled = post_listens(app, [(b"x-api-key", RW)], chunks)
    assert (code, json.loads(body)) == (202, {"accepted": 2})
    assert pulled == len(BODY)
    assert len(publisher.sent) == 1


def test_malformed_json_is_422_and_publishes_nothing(app, publisher):
    code, _, body, _ = post_listens(app, [(b"x-api-key", RW)], [b'{"listens": [}'])
    assert code == 422
    assert detail(body)[0]["type"] == "json_invalid"
    assert publisher.sent == []


def test_a_burst_over_the_rate_is_429_with_retry_after(app, publisher):
    answers = [call(app, "GET", "/users/u/recommendations", [(b"x-api-key", RO)]) for _ in range(4)]
    assert [status for status, *_ in answers] == [200, 200, 200, 429]
    _, headers, body, _ = answers[-1]
    assert int(headers[b"retry-after"]) >= 1
    assert "rate limit" in detail(body)
    # The limit is per key: the other key still has its burst; 429s published nothing.
    code, *_ = post_listens(app, [(b"x-api-key", RW)], [BODY])
    assert code == 202
    assert len(publisher.sent) == 4  # three impressions and one batch of listens


def test_open_routes_need_no_key(app):
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc"):
        status, *_ = call(app, "GET", path, [])
        assert status == 200, path


def test_token_bucket_refills_at_the_rate():
    clock = Clock()
    limiter = RateLimiter(rate_per_s=2.0, burst=2, clock=clock)
    assert [limiter.wait_s(b"k") for _ in range(3)] == [0.0, 0.0, 0.5]
    clock.now = 0.5  # one token back
    assert limiter.wait_s(b"k") == 0.0
    assert limiter.wait_s(b"k") == pytest.approx(0.5)
    clock.now = 100.0  # never more than the burst
    assert [limiter.wait_s(b"k") for _ in range(3)] == [0.0, 0.0, 0.5]
    assert limiter.wait_s(b"other") == 0.0


def test_openapi_declares_the_key_and_the_refusals(app):
    spec = json.loads(call(app, "GET", "/openapi.json", [])[2])
    schemes = spec["components"]["securitySchemes"]
    [(name, scheme)] = schemes.items()
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-API-Key")
    for path, method, codes in [
        ("/users/{user_id}/recommendations", "get", {"401", "429", "503"}),
        ("/users/{user_id}/listens", "post", {"401", "403", "413", "429", "503"}),
        ("/users/{user_id}/feedback", "post", {"401", "403", "413", "429", "503"}),
    ]:
        operation = spec["paths"][path][method]
        assert operation["security"] == [{name: []}]
        assert codes <= set(operation["responses"])
    for path in ("/healthz", "/readyz"):
        assert "security" not in spec["paths"][path]["get"]
