"""The recommendation API: thin routes over the recommender and the event producer.

``create_app`` takes its collaborators so tests can give it a producer that fails; the
module-level ``app`` (for ``uvicorn service.app:app``) builds them from settings.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Protocol

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingestion.streams import Stream
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
from service.recommender import PlayedTracks, PopularityRecommender
from tunelake.settings import Settings, get_settings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_048_576
USER_ID = Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$")


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
        raise HTTPException(503, f"event store unavailable, nothing was accepted: {exc}") from exc
    metrics.events_published.labels(stream.value).inc(acknowledged)
    return acknowledged


def create_app(
    settings: Settings, *, publisher: Publisher, recommender: PopularityRecommender
) -> FastAPI:
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
    api_keys = settings.api_key_set()

    def require_api_key(x_api_key: Annotated[str | None, Header()] = None) -> None:
        if x_api_key is None or not any(secrets.compare_digest(x_api_key, k) for k in api_keys):
            raise HTTPException(401, "missing or unknown X-API-Key header")

    @app.middleware("http")
    async def limit_body_and_time(request: Request, call_next):
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return JSONResponse({"detail": f"body over {MAX_BODY_BYTES} bytes"}, 413)
        began = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        app.state.metrics.requests.labels(
            request.method, getattr(route, "path", "unmatched"), str(response.status_code)
        ).observe(time.perf_counter() - began)
        return response

    errors = {401: {"model": ErrorBody}, 503: {"model": ErrorBody}}

    @app.get(
        "/users/{user_id}/recommendations",
        response_model=RecommendationResponse,
        responses={503: {"model": ErrorBody}},
    )
    def recommendations(
        user_id: Annotated[str, USER_ID],
        k: Annotated[int, Query(ge=1, le=100)] = 10,
    ) -> RecommendationResponse:
        items = app.state.recommender.recommend(k, exclude=app.state.played.of(user_id))
        response = RecommendationResponse(
            user_id=user_id,
            request_id=str(uuid.uuid4()),
            model_version=app.state.recommender.model_version,
            items=items,
        )
        event = impression_event(
            user_id, response.request_id, response.model_version, items, datetime.now(UTC)
        )
        _publish(app, Stream.RECOMMENDATIONS, [event])
        return response

    @app.post(
        "/users/{user_id}/listens",
        status_code=202,
        response_model=Accepted,
        dependencies=[Depends(require_api_key)],
        responses={**errors, 413: {"model": ErrorBody}},
    )
    def listens(user_id: Annotated[str, USER_ID], body: ListensIn) -> Accepted:
        if len(body.listens) > MAX_LISTENS_PER_REQUEST:
            raise HTTPException(
                413, f"{len(body.listens)} listens; at most {MAX_LISTENS_PER_REQUEST} a request"
            )
        now = datetime.now(UTC)
        accepted = _publish(app, Stream.LISTENS, listen_events(user_id, body.listens, now))
        app.state.played.add(user_id, [listen.track_id for listen in body.listens])
        return Accepted(accepted=accepted)

    @app.post(
        "/users/{user_id}/feedback",
        status_code=202,
        response_model=Accepted,
        dependencies=[Depends(require_api_key)],
        responses=errors,
    )
    def feedback(user_id: Annotated[str, USER_ID], body: FeedbackIn) -> Accepted:
        event = feedback_event(user_id, body, datetime.now(UTC))
        return Accepted(accepted=_publish(app, Stream.FEEDBACK, [event]))

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"model": ErrorBody}})
    def readyz() -> dict:
        if not app.state.publisher.ready():
            raise HTTPException(503, "Kafka or the schema registry is not reachable")
        return {"status": "ready"}

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def catalog_popularity(settings: Settings):
    from ingestion.catalog import read_catalog

    def load() -> list[tuple[str, float]] | None:
        catalog = read_catalog(settings)
        return None if catalog is None else [(t.track_id, t.popularity) for t in catalog]

    return load


def build_app(settings: Settings | None = None) -> FastAPI:
    """The production wiring: Kafka producer and catalog popularity from settings."""
    from ingestion.producer import EventProducer

    settings = settings or get_settings()
    producer = EventProducer(settings)
    app = create_app(
        settings,
        publisher=producer,
        recommender=PopularityRecommender(catalog_popularity(settings)),
    )
    app.router.on_shutdown.append(producer.close)
    return app
