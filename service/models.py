"""The HTTP contract's request and response bodies (fixed: outside clients rely on them)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_LISTENS_PER_REQUEST = 1000
# External ids: opaque strings, but never empty, padded or control characters.
ExternalId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$")]


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a UTC offset (ISO-8601, e.g. 2026-11-26T07:00:00Z)")
    return value


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


class RecommendedItem(BaseModel):
    track_id: str
    rank: int = Field(ge=1)
    score: float


class RecommendationResponse(BaseModel):
    user_id: str
    request_id: str
    model_version: str
    items: list[RecommendedItem]


class ListenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    track_id: ExternalId
    played_at: UtcDatetime
    ms_played: int = Field(ge=0, le=24 * 3600 * 1000)
    context: str | None = Field(default=None, max_length=256)
    request_id: ExternalId | None = None


class ListensIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The 1000 cap is enforced by the route (413, not 422): see service/app.py.
    listens: list[ListenIn] = Field(min_length=1)


class Accepted(BaseModel):
    accepted: int


class FeedbackAction(StrEnum):
    PLAY = "play"
    SKIP = "skip"
    LIKE = "like"
    DISLIKE = "dislike"


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: ExternalId
    track_id: ExternalId
    action: FeedbackAction


class ErrorBody(BaseModel):
    detail: str | list
