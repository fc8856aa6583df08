"""The streams that land in Bronze: topic (from settings) and the repo's Avro reader schema.

Three are events tunelake's service produces (``EVENT_STREAMS``, their schemas registered by
the producer); ``user_profiles`` is written by Debezium from PostgreSQL, whose converter
registers the writer schemas (``ingestion/cdc.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tunelake.settings import Settings


class Stream(StrEnum):
    RECOMMENDATIONS = "recommendations"
    LISTENS = "listens"
    FEEDBACK = "feedback"
    USER_PROFILES = "user_profiles"


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
        StreamSpec(Stream.USER_PROFILES, "user_profile_change", "topic_user_profiles"),
    )
}
EVENT_STREAMS = (Stream.RECOMMENDATIONS, Stream.LISTENS, Stream.FEEDBACK)
