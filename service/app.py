"""The recommendation API: thin routes over the recommender and the event producer.

``create_app`` takes its collaborators so tests can give it a producer that fails; the
module-level ``app`` (for ``uvicorn service.app:app``) builds them from settings.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Protocol

from fastapi import FastAPI, Header, HTTPException, Path, Query, Request, Response, Security
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingestion.streams import Stream
from ingestion.validity import ID_MAX_LENGTH, ID_PATTERN
from service.auth import API_KEY_HEADER, ApiGate, KeyRing, RateLimiter
from service.events import feedback_event, impression_event, listen_events
from service.metrics import ServiceMetrics
from service.models import (
    MAX_LISTENS_PER_REQUEST,
    Accepted,
    ErrorBody,
    FeedbackIn,
    ListensIn,
    RecommendationResponse,
)
from service.recommender import PlayedTracks, RankingUnavailable, Recommender
from tunelake.settings import Settings, get_settings

log = logging.getLogger(__name__)

USER_ID = Path(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)
IDEMPOTENCY_KEY = Header(
    alias="Idempotency-Key",
    min_length=1,
    max_length=ID_MAX_LENGTH,
    pattern=ID_PATTERN,
    description="Optional: the same key on a retried request gives its events the same ids, "
    "so the retry is counted once (without one, ids come from each event's content).",
)
# The gate (service/auth.py) enforces the key; this declares it in the OpenAPI document.
API_KEY = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="Read-write keys: TUNELAKE_API_KEYS; read-only keys (GET only): "
    "TUNELAKE_API_READ_KEYS.",
)
RETRY_SAFE = (
    "nothing was accepted; some events may have reached the event store, and retrying the "
    "same request is safe: its events keep their ids (from their content or the "
    "Idempotency-Key), so a retry is counted once"
)


class Publisher(Protocol):
    def publish(self, stream: Stream, events: list[dict]) -> int: ...
    def ready(self) -> bool: ...


def _publish(app: FastAPI, stream: Stream, events: list[dict]) -> int:
    from ingestion.producer import PublishError

    metrics: ServiceMetrics = app.state.metrics
    try:
        acknowledged = app.state.publisher.publish(stream, events)
    except PublishError as exc:
        metrics.publish_failures.labels(stream.value).inc()
        raise HTTPException(503, f"event store unavailable, {RETRY_SAFE}: {exc}") from exc
    metrics.events_published.labels(stream.value).inc(acknowledged)
    return acknowledged


def create_app(settings: Settings, *, publisher: Publisher, recommender: Recommender) -> FastAPI:
    app = FastAPI(
        title="tunelake recommendation service",
        version="1",
        description="Personalised tracks; every impression, listen and feedback goes to Kafka.",
        responses={422: {"description": "Invalid input, with field-level messages"}},
    )
    app.state.publisher = publisher
    app.state.recommender = recommender
    app.state.played = PlayedTracks()
    app.state.metrics = ServiceMetrics()
    # Added first, so it sits inside the timing middleware: refusals are timed too.
    app.add_middleware(
        ApiGate,
        keys=KeyRing(settings.api_key_set(), settings.api_read_key_set()),
        limiter=RateLimiter(settings.api_rate_per_second, settings.api_rate_burst),
        max_body_bytes=settings.api_max_body_bytes,
    )

    @app.middleware("http")
    async def time_requests(request: Request, call_next):
        began = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        app.state.metrics.requests.labels(
            request.method, getattr(route, "path", "unmatched"), str(response.status_code)
        ).observe(time.perf_counter() - began)
        return response

    def error(description: str) -> dict:
        return {"model": ErrorBody, "description": description}

    guarded = {
        401: error("No or unknown X-API-Key"),
        429: error("This key's rate limit is exceeded; Retry-After says when to come back"),
        503: error("The event store (or, for reads, the popularity source) is unavailable"),
    }
    writes = {
        **guarded,
        403: error("A read-only key on a write route"),
        413: error("Body over the size limit, or more than 1000 listens"),
    }

    @app.get(
        "/users/{user_id}/recommendations",
        response_model=RecommendationResponse,
        dependencies=[Security(API_KEY)],
        responses=guarded,
    )
    def recommendations(
        user_id: Annotated[str, USER_ID],
        k: Annotated[int, Query(ge=1, le=100)] = 10,
    ) -> RecommendationResponse:
        try:
            served = app.state.recommender.recommend(user_id, k, app.state.played.of(user_id))
        except RankingUnavailable as exc:
            raise HTTPException(
                503,
                f"recommendations unavailable: {exc}",
                headers={"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))},
            ) from exc
        response = RecommendationResponse(
            user_id=user_id,
            request_id=str(uuid.uuid4()),
            model_version=served.model_version,
            items=served.items,
        )
        event = impression_event(
            user_id, response.request_id, served.model_version, served.items, datetime.now(UTC)
        )
        _publish(app, Stream.RECOMMENDATIONS, [event])
        return response

    @app.post(
        "/users/{user_id}/listens",
        status_code=202,
        response_model=Accepted,
        dependencies=[Security(API_KEY)],
        responses=writes,
    )
    def listens(
        user_id: Annotated[str, USER_ID],
        body: ListensIn,
        idempotency_key: Annotated[str | None, IDEMPOTENCY_KEY] = None,
    ) -> Accepted:
        if len(body.listens) > MAX_LISTENS_PER_REQUEST:
            raise HTTPException(
                413, f"{len(body.listens)} listens; at most {MAX_LISTENS_PER_REQUEST} a request"
            )
        now = datetime.now(UTC)
        events = listen_events(user_id, body.listens, now, idempotency_key)
        accepted = _publish(app, Stream.LISTENS, events)
        app.state.played.add(user_id, [(item.track_id, item.ms_played) for item in body.listens])
        return Accepted(accepted=accepted)

    @app.post(
        "/users/{user_id}/feedback",
        status_code=202,
        response_model=Accepted,
        dependencies=[Security(API_KEY)],
        responses=writes,
    )
    def feedback(
        user_id: Annotated[str, USER_ID],
        body: FeedbackIn,
        idempotency_key: Annotated[str | None, IDEMPOTENCY_KEY] = None,
    ) -> Accepted:
        event = feedback_event(user_id, body, datetime.now(UTC), idempotency_key)
        return Accepted(accepted=_publish(app, Stream.FEEDBACK, [event]))

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"model": ErrorBody}})
    def readyz() -> dict:
        if not app.state.publisher.ready():
            raise HTTPException(503, "Kafka or the schema registry is not reachable")
        return {"status": "ready", "model_version": app.state.recommender.model_version}

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def build_app(settings: Settings | None = None) -> FastAPI:
    """The production wiring from settings: the Kafka producer, the registry's current
    model and the deleted users (followed in the background), Silver's most-popular."""
    from ingestion.producer import EventProducer
    from service.recommender import ModelRecommender, PopularityRecommender
    from service.sources import RegistrySource, silver_deleted_users, silver_popularity

    settings = settings or get_settings()
    producer = EventProducer(settings)
    recommender = ModelRecommender(
        RegistrySource(settings),
        PopularityRecommender(silver_popularity(settings)),
        refresh_s=settings.model_refresh_seconds,
        deleted=silver_deleted_users(settings),
    )
    app = create_app(settings, publisher=producer, recommender=recommender)
    app.router.on_startup.append(recommender.start)
    app.router.on_shutdown.append(recommender.close)
    app.router.on_shutdown.append(producer.close)
    return app
