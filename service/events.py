"""Turn accepted requests into the Avro event records of ingestion/schemas (pure)."""

from __future__ import annotations

import uuid
from datetime import datetime

from service.models import FeedbackIn, ListenIn, RecommendedItem

SCHEMA_VERSION = 1


def _envelope(now: datetime) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_time": now, "schema_version": SCHEMA_VERSION}


def impression_event(
    user_id: str,
    request_id: str,
    model_version: str,
    items: list[RecommendedItem],
    now: datetime,
) -> dict:
    return _envelope(now) | {
        "request_id": request_id,
        "user_id": user_id,
        "model_version": model_version,
        "items": [item.model_dump() for item in items],
    }


def listen_events(user_id: str, listens: list[ListenIn], now: datetime) -> list[dict]:
    return [
        _envelope(now)
        | {
            "user_id": user_id,
            "track_id": listen.track_id,
            "played_at": listen.played_at,
            "ms_played": listen.ms_played,
            "context": listen.context,
            "request_id": listen.request_id,
        }
        for listen in listens
    ]


def feedback_event(user_id: str, feedback: FeedbackIn, now: datetime) -> dict:
    return _envelope(now) | {
        "user_id": user_id,
        "request_id": feedback.request_id,
        "track_id": feedback.track_id,
        "action": feedback.action.value,
    }
