"""The HTTP contract's request and response bodies (fixed: outside clients rely on them).

Field constraints are rendered from ``ingestion/validity.py``, the one declaration of a
valid event that the Bronze rules and the quality suites render too: a value this API
refuses with a 422 is one Bronze would quarantine.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from ingestion.streams import Stream
from ingestion.validity import (
    IDENTIFIER,
    FeedbackAction,
    FieldRule,
    Text,
    TimeBounds,
    Whole,
    instant_problem,
    rule_of,
)
from tunelake.settings import get_settings

__all__ = ["FeedbackAction"]  # its home is ingestion.validity; clients import it from here too

MAX_LISTENS_PER_REQUEST = 1000


def _text(text: Text):
    return Annotated[
        str, Field(min_length=text.min_length, max_length=text.max_length, pattern=text.pattern)
    ]


def _whole(bound: Whole):
    return Annotated[int, Field(ge=bound.minimum, le=bound.maximum)]


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a UTC offset (ISO-8601, e.g. 2026-11-26T07:00:00Z)")
    return value


def _instant(rule: FieldRule):
    def in_bounds(value: datetime) -> datetime:
        # The process-wide settings: a pydantic model cannot take the app's settings object.
        bounds = TimeBounds.at(get_settings(), datetime.now(UTC))
        problem = instant_problem(rule, value, bounds)
        if problem:
            raise PydanticCustomError("event_time_out_of_bounds", problem)
        return value

    return Annotated[datetime, AfterValidator(_utc), AfterValidator(in_bounds)]


# External ids: opaque strings, but never empty, padded or control characters.
ExternalId = _text(IDENTIFIER)
PlayedAt = _instant(rule_of(Stream.LISTENS, "played_at"))
MsPlayed = _whole(rule_of(Stream.LISTENS, "ms_played").constraint)
ListenContext = _text(rule_of(Stream.LISTENS, "context").constraint)
Rank = _whole(rule_of(Stream.RECOMMENDATIONS, "rank", within="items").constraint)


class RecommendedItem(BaseModel):
    track_id: str
    rank: Rank
    score: float


class RecommendationResponse(BaseModel):
    user_id: str
    request_id: str
    model_version: str
    items: list[RecommendedItem]


class ListenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    track_id: ExternalId
    played_at: PlayedAt
    ms_played: MsPlayed
    context: ListenContext | None = None
    request_id: ExternalId | None = None


class ListensIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The 1000 cap is enforced by the route (413, not 422): see service/app.py.
    listens: list[ListenIn] = Field(min_length=1)


class Accepted(BaseModel):
    accepted: int


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: ExternalId
    track_id: ExternalId
    action: FeedbackAction


class ErrorBody(BaseModel):
    detail: str | list
