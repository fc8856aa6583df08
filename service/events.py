"""Turn accepted requests into the Avro event records of ingestion/schemas (pure).

A listen's and a feedback's ``event_id`` is a UUID derived from what the client sent: its
content, or the client's ``Idempotency-Key`` and the item's place in the request. A retried
request (after a timeout or a 503 that came after part of a batch reached Kafka) therefore
produces the same ids, and Silver, which keeps one row per ``event_id``, counts it once.
An impression is a new request each time: its id is random.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from service.models import FeedbackIn, ListenIn, RecommendedItem

SCHEMA_VERSION = 1
# Namespace of the derived event ids (uuid5); changing it would change every id.
EVENT_ID_NAMESPACE = uuid.UUID("5b0c6a53-7c1e-4c4e-9a43-2f1d8f0e6a11")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _envelope(now: datetime, event_id: str) -> dict:
    return {"event_id": event_id, "event_time": now, "schema_version": SCHEMA_VERSION}


def derived_event_id(*parts: object) -> str:
    """A UUID (version 5) of ``parts``; the unit separator keeps ("a", "bc") from ("ab", "c")."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, "\x1f".join(str(p) for p in parts)))


def _epoch_ms(moment: datetime) -> int:
    """The event contract's precision: one instant whatever its offset, to the millisecond."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def listen_event_id(
    user_id: str, listen: ListenIn, index: int, idempotency_key: str | None = None
) -> str:
    if idempotency_key is not None:
        return derived_event_id("listens", user_id, idempotency_key, index)
    return derived_event_id(
        "listen", user_id, listen.track_id, _epoch_ms(listen.played_at), listen.ms_played
    )


def feedback_event_id(
    user_id: str, feedback: FeedbackIn, idempotency_key: str | None = None
) -> str:
    if idempotency_key is not None:
        return derived_event_id("feedback", user_id, idempotency_key)
    return derived_event_id(
        "feedback", user_id, feedback.request_id, feedback.track_id, feedback.action.value
    )


def impression_event(
    user_id: str,
    request_id: str,
    model_version: str,
    items: list[RecommendedItem],
    now: datetime,
) -> dict:
    return _envelope(now, str(uuid.uuid4())) | {
        "request_id": request_id,
        "user_id": user_id,
        "model_version": model_version,
        "items": [item.model_dump() for item in items],
    }


def listen_events(
    user_id: str, listens: list[ListenIn], now: datetime, idempotency_key: str | None = None
) -> list[dict]:
    return [
        _envelope(now, listen_event_id(user_id, listen, i, idempotency_key))
        | {
            "user_id": user_id,
            "track_id": listen.track_id,
            "played_at": listen.played_at,
            "ms_played": listen.ms_played,
            "context": listen.context,
            "request_id": listen.request_id,
        }
        for i, listen in enumerate(listens)
    ]


def feedback_event(
    user_id: str, feedback: FeedbackIn, now: datetime, idempotency_key: str | None = None
) -> dict:
    return _envelope(now, feedback_event_id(user_id, feedback, idempotency_key)) | {
        "user_id": user_id,
        "request_id": feedback.request_id,
        "track_id": feedback.track_id,
        "action": feedback.action.value,
    }
