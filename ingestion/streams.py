"""The event streams tunelake produces: topic (from settings), Avro schema, key."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tunelake.settings import Settings


class Stream(StrEnum):
    RECOMMENDATIONS = "recommendations"
    LISTENS = "listens"
    FEEDBACK = "feedback"


@dataclass(frozen=True)
class StreamSpec:
    stream: Stream
    schema_name: str
    topic_setting: str

    def topic(self, settings: Settings) -> str:
        return getattr(settings, self.topic_setting)


STREAMS: dict[Stream, StreamSpec] = {
    spec.stream: spec
    for spec in (
        StreamSpec(Stream.RECOMMENDATIONS, "recommendation_event", "topic_recommendation_events"),
        StreamSpec(Stream.LISTENS, "listen", "topic_listening_history"),
        StreamSpec(Stream.FEEDBACK, "feedback", "topic_recommendation_feedback"),
    )
}
